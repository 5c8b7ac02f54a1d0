"""sms: SMS to residents who consent (receipt and reply notice), their outbox, consent and stop on forms

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00

One ``sms_message`` row per SMS, written with the submission or the answer it announces and sent by the
worker (services/sms.py): the phone and the template's values encrypted, the phone's keyed hash for the
daily cap, the outcome per message. A form records the resident's consent (false for every form so far)
and when they stopped the notices.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_consent', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('sms_stopped_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('sms_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('params', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=True),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('error_code', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_sms_message_form_id_opinion_form'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_message'))
    )
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_message_form_id'), ['form_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_message_phone_hash'), ['phone_hash'], unique=False)
        batch_op.create_index('ix_sms_message_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_message_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_sms_message_phone_hash'))
        batch_op.drop_index(batch_op.f('ix_sms_message_form_id'))
    op.drop_table('sms_message')

    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.drop_column('sms_stopped_at')
        batch_op.drop_column('sms_consent')
