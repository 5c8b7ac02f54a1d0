"""paper_sequence, paper_batch, paper_void, and opinion_form.paper_serial: printed batches of numbered paper
forms, voided serials, and the serial a form was typed from (issue 20.1)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 05:00:00

New tables, and one nullable column on opinion_form (NULL for every existing form) with a unique index,
added in place on both engines (no copy of the table).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('paper_sequence',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_paper_sequence'))
    )
    op.create_table('paper_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workroom_id', sa.Integer(), nullable=False),
    sa.Column('service_point_id', sa.Integer(), nullable=True),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('first_no', sa.Integer(), nullable=False),
    sa.Column('last_no', sa.Integer(), nullable=False),
    sa.Column('first_serial', sa.String(length=16), nullable=False),
    sa.Column('last_serial', sa.String(length=16), nullable=False),
    sa.Column('page_size', sa.String(length=2), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('printed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('printed_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['app_user.id'], name=op.f('fk_paper_batch_created_by_user_id_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['printed_by_user_id'], ['app_user.id'], name=op.f('fk_paper_batch_printed_by_user_id_app_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['service_point_id'], ['service_point.id'], name=op.f('fk_paper_batch_service_point_id_service_point'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workroom_id'], ['workroom.id'], name=op.f('fk_paper_batch_workroom_id_workroom')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_paper_batch')),
    sa.UniqueConstraint('first_serial', name=op.f('uq_paper_batch_first_serial'))
    )
    with op.batch_alter_table('paper_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_paper_batch_service_point_id'), ['service_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_paper_batch_workroom_id'), ['workroom_id'], unique=False)

    op.create_table('paper_void',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('voided_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['paper_batch.id'], name=op.f('fk_paper_void_batch_id_paper_batch'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['voided_by_user_id'], ['app_user.id'], name=op.f('fk_paper_void_voided_by_user_id_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_paper_void')),
    sa.UniqueConstraint('serial', name=op.f('uq_paper_void_serial'))
    )
    with op.batch_alter_table('paper_void', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_paper_void_batch_id'), ['batch_id'], unique=False)

    op.add_column('opinion_form', sa.Column('paper_serial', sa.String(length=16), nullable=True))
    op.create_index('ix_opinion_form_paper_serial', 'opinion_form', ['paper_serial'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_opinion_form_paper_serial', table_name='opinion_form')
    op.drop_column('opinion_form', 'paper_serial')  # in place: SQLite 3.35+ drops a plain column

    with op.batch_alter_table('paper_void', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paper_void_batch_id'))

    op.drop_table('paper_void')
    with op.batch_alter_table('paper_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paper_batch_workroom_id'))
        batch_op.drop_index(batch_op.f('ix_paper_batch_service_point_id'))

    op.drop_table('paper_batch')
    op.drop_table('paper_sequence')