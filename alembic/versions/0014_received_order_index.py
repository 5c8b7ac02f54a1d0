"""opinion_form gains indexes in received order: (submitted_at, id) and (status, submitted_at, id)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 23:30:00

The office's desk lists forms newest (or, for the triage queue, oldest) received first. Without an index in
that order every page sorted every matching form: 1.7 s for the default list at 10,000,000 forms (issue
18.5). With (submitted_at, id) the first page reads 50 index entries (0.1 ms). A list of one state needs
(status, submitted_at, id): through the first index alone, the triage queue oldest first walked 9.9 million
older forms to find the 50 oldest waiting ones (2.3 s).
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.create_index('ix_opinion_form_submitted_at_id', ['submitted_at', 'id'], unique=False)
        batch_op.create_index('ix_opinion_form_status_submitted_at_id', ['status', 'submitted_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.drop_index('ix_opinion_form_status_submitted_at_id')
        batch_op.drop_index('ix_opinion_form_submitted_at_id')
