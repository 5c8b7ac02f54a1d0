"""opinion_form gains merged_into_id and merge_snapshot: similar forms merged into one suggestion

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:00:00

Issue 19.3 (app/services/merging.py). ``merged_into_id``: the lead form a follower follows (NULL for every
existing form), indexed, since every action on a form asks for its followers. ``merge_snapshot``: the
follower's workflow state at the merge, which unmerging restores.

Both engines add the columns in place (no copy of the table): SQLite's ``ADD COLUMN`` takes a column with a
``REFERENCES`` clause when its default is NULL, so there the foreign key is written with the column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = 'fk_opinion_form_merged_into_id_opinion_form'
INDEX = 'ix_opinion_form_merged_into_id'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE opinion_form ADD COLUMN merged_into_id INTEGER '
                   f'CONSTRAINT {FK} REFERENCES opinion_form (id)')
        op.add_column('opinion_form', sa.Column('merge_snapshot', sa.JSON(), nullable=True))
    else:
        op.add_column('opinion_form', sa.Column('merged_into_id', sa.Integer(), nullable=True))
        op.add_column('opinion_form', sa.Column('merge_snapshot', sa.JSON(), nullable=True))
        op.create_foreign_key(FK, 'opinion_form', 'opinion_form', ['merged_into_id'], ['id'])
    op.create_index(INDEX, 'opinion_form', ['merged_into_id'], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name='opinion_form')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite 3.35+ drops a column in place, but not one a foreign key is declared on: the table is copied.
        with op.batch_alter_table('opinion_form', schema=None) as batch_op:
            batch_op.drop_column('merge_snapshot')
            batch_op.drop_column('merged_into_id')
    else:
        op.drop_constraint(FK, 'opinion_form', type_='foreignkey')
        op.drop_column('opinion_form', 'merge_snapshot')
        op.drop_column('opinion_form', 'merged_into_id')
