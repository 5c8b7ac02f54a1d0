"""activity, activity_representative, activity_photo, report_draft: the register of activities and the
office's choices for each period's brief (issue 20.2, 20.4)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 04:49:36

New tables only: nothing existing is read or rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('workroom_id', sa.Integer(), nullable=False),
    sa.Column('service_point_id', sa.Integer(), nullable=True),
    sa.Column('attendance', sa.Integer(), nullable=False),
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['app_user.id'], name=op.f('fk_activity_created_by_user_id_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['service_point_id'], ['service_point.id'], name=op.f('fk_activity_service_point_id_service_point'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workroom_id'], ['workroom.id'], name=op.f('fk_activity_workroom_id_workroom')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity'))
    )
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.create_index('ix_activity_held_on_id', ['held_on', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activity_service_point_id'), ['service_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activity_workroom_id'), ['workroom_id'], unique=False)

    op.create_table('report_draft',
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('opening', sa.Text(), nullable=True),
    sa.Column('featured_form_ids', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['app_user.id'], name=op.f('fk_report_draft_updated_by_user_id_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_report_draft'))
    )
    op.create_table('activity_photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_activity_photo_activity_id_activity'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_photo')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_activity_photo_storage_key'))
    )
    with op.batch_alter_table('activity_photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activity_photo_activity_id'), ['activity_id'], unique=False)

    op.create_table('activity_representative',
    sa.Column('activity_id', sa.Integer(), nullable=False),
    sa.Column('representative_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_activity_representative_activity_id_activity'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['representative_id'], ['representative.id'], name=op.f('fk_activity_representative_representative_id_representative'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', 'representative_id', name=op.f('pk_activity_representative'))
    )
    with op.batch_alter_table('activity_representative', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activity_representative_representative_id'), ['representative_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('activity_representative', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activity_representative_representative_id'))

    op.drop_table('activity_representative')
    with op.batch_alter_table('activity_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activity_photo_activity_id'))

    op.drop_table('activity_photo')
    op.drop_table('report_draft')
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activity_workroom_id'))
        batch_op.drop_index(batch_op.f('ix_activity_service_point_id'))
        batch_op.drop_index('ix_activity_held_on_id')

    op.drop_table('activity')
