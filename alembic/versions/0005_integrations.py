"""integrations: residents, photos, API clients, webhooks, outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 20:38:47.227277
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _txid_default() -> sa.TextClause | None:
    # PostgreSQL: the id of the writing transaction (see models.integrations.FormChange); SQLite: none.
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("(pg_current_xact_id()::text)::bigint")
    return None


def upgrade() -> None:
    op.create_table('resident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('unionid', sa.String(length=128), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resident')),
    sa.UniqueConstraint('openid', name=op.f('uq_resident_openid'))
    )
    op.create_table('wechat_token',
    sa.Column('appid', sa.String(length=64), nullable=False),
    sa.Column('access_token', sa.String(length=2048), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('force_refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('appid', name=op.f('pk_wechat_token'))
    )
    op.create_table('resident_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_resident_token_resident_id_resident'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resident_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_resident_token_token_hash'))
    )
    with op.batch_alter_table('resident_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_token_resident_id'), ['resident_id'], unique=False)

    op.create_table('subscription_credit',
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=128), nullable=False),
    sa.Column('credits', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_subscription_credit_resident_id_resident'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resident_id', 'template_id', name=op.f('pk_subscription_credit'))
    )
    op.create_table('api_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['app_user.id'], name=op.f('fk_api_client_created_by_user_id_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_client')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_client_key_hash'))
    )
    op.create_table('webhook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.String(length=1000), nullable=False),
    sa.Column('secret', sa.String(length=500), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['api_client.id'], name=op.f('fk_webhook_client_id_api_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook'))
    )
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_client_id'), ['client_id'], unique=False)

    op.create_table('form_photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_form_photo_form_id_opinion_form'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_photo')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_form_photo_storage_key'))
    )
    with op.batch_alter_table('form_photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_photo_form_id'), ['form_id'], unique=False)

    op.create_table('wechat_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('errmsg', sa.String(length=500), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_wechat_notice_form_id_opinion_form'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], name=op.f('fk_wechat_notice_resident_id_resident'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_notice'))
    )
    with op.batch_alter_table('wechat_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_notice_form_id'), ['form_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wechat_notice_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index('ix_wechat_notice_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)

    op.create_table('form_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('txid', sa.BigInteger(), server_default=_txid_default(), nullable=True),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['form_event.id'], name=op.f('fk_form_change_event_id_form_event'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_form_change_form_id_opinion_form'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_change'))
    )
    with op.batch_alter_table('form_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_change_form_id'), ['form_id'], unique=False)
        batch_op.create_index('ix_form_change_txid_id', ['txid', 'id'], unique=False)

    op.create_table('webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['change_id'], ['form_change.id'], name=op.f('fk_webhook_delivery_change_id_form_change'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhook.id'], name=op.f('fk_webhook_delivery_webhook_id_webhook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery'))
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_change_id'), ['change_id'], unique=False)
        batch_op.create_index('ix_webhook_delivery_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_webhook_id'), ['webhook_id'], unique=False)

    op.create_table('webhook_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_delivery.id'], name=op.f('fk_webhook_attempt_delivery_id_webhook_delivery'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempt'))
    )
    with op.batch_alter_table('webhook_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempt_delivery_id'), ['delivery_id'], unique=False)

    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resident_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('api_client_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('review_flag', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('content_check', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_opinion_form_resident_id'), ['resident_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_opinion_form_api_client_id_api_client'), 'api_client', ['api_client_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_opinion_form_resident_id_resident'), 'resident', ['resident_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_opinion_form_resident_id_resident'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_opinion_form_api_client_id_api_client'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_opinion_form_resident_id'))
        batch_op.drop_column('content_check')
        batch_op.drop_column('review_flag')
        batch_op.drop_column('api_client_id')
        batch_op.drop_column('resident_id')

    with op.batch_alter_table('webhook_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_attempt_delivery_id'))

    op.drop_table('webhook_attempt')
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_webhook_id'))
        batch_op.drop_index('ix_webhook_delivery_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_change_id'))

    op.drop_table('webhook_delivery')
    with op.batch_alter_table('form_change', schema=None) as batch_op:
        batch_op.drop_index('ix_form_change_txid_id')
        batch_op.drop_index(batch_op.f('ix_form_change_form_id'))

    op.drop_table('form_change')
    with op.batch_alter_table('wechat_notice', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_notice_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_wechat_notice_resident_id'))
        batch_op.drop_index(batch_op.f('ix_wechat_notice_form_id'))

    op.drop_table('wechat_notice')
    with op.batch_alter_table('form_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_photo_form_id'))

    op.drop_table('form_photo')
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_client_id'))

    op.drop_table('webhook')
    op.drop_table('api_client')
    op.drop_table('subscription_credit')
    with op.batch_alter_table('resident_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_token_resident_id'))

    op.drop_table('resident_token')
    op.drop_table('wechat_token')
    op.drop_table('resident')
