"""personal data: names and phone numbers encrypted at rest, a keyed hash of the phone, erasure time

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 00:40:00

The columns widen to text (an encrypted value is longer than the clear one). Values already stored stay
readable as they are (plain text) until `minyi rotate-keys` encrypts them and fills the phone hashes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.alter_column('submitter_name', existing_type=sa.String(length=64), type_=sa.Text(), existing_nullable=True)
        batch_op.alter_column('submitter_phone', existing_type=sa.String(length=32), type_=sa.Text(), existing_nullable=True)
        batch_op.add_column(sa.Column('submitter_phone_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('personal_data_erased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_opinion_form_submitter_phone_hash'), ['submitter_phone_hash'], unique=False)
    with op.batch_alter_table('representative', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.String(length=32), type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    # Only for a database whose values are still plain text (before `minyi rotate-keys`): encrypted values
    # would not fit back into the narrow columns.
    with op.batch_alter_table('representative', schema=None) as batch_op:
        batch_op.alter_column('phone', existing_type=sa.Text(), type_=sa.String(length=32), existing_nullable=True)
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opinion_form_submitter_phone_hash'))
        batch_op.drop_column('personal_data_erased_at')
        batch_op.drop_column('submitter_phone_hash')
        batch_op.alter_column('submitter_phone', existing_type=sa.Text(), type_=sa.String(length=32), existing_nullable=True)
        batch_op.alter_column('submitter_name', existing_type=sa.Text(), type_=sa.String(length=64), existing_nullable=True)
