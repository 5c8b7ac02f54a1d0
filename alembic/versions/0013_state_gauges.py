"""stat_cell/stat_owner_cell gain gauges (forms in each open state now) and days-to-answer buckets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:40:00

The summary's ``current`` (issue 17.1) is read from the counter cells like the cumulative counts:
``now_submitted``, ``now_assigned``, ``now_answered`` and ``now_extension`` are 1 for a form while it is in
that state (app/services/stats.py ``form_vector``); the days-to-answer chart (17.5) likewise reads
``answered_le1`` … ``answered_gt15``, the answered forms by working days to the first answer. Existing cells are filled from the forms: day cells by
a correlated count over the forms of that cell (only open forms match, through the status index), month
cells as the sum of their day cells.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GAUGES = {
    "now_submitted": "f.status = 'submitted'",
    "now_assigned": "f.status = 'assigned'",
    "now_answered": "f.status = 'answered'",
    "now_extension": "f.status = 'assigned' AND f.extension_due_at IS NOT NULL",
}
BUCKETS = {
    "answered_le1": "f.answer_working_days <= 1",
    "answered_2_3": "f.answer_working_days BETWEEN 2 AND 3",
    "answered_4_7": "f.answer_working_days BETWEEN 4 AND 7",
    "answered_8_15": "f.answer_working_days BETWEEN 8 AND 15",
    "answered_gt15": "f.answer_working_days >= 16",
}
OPEN = "f.status IN ('submitted', 'assigned', 'answered')"
ANSWERED = "f.answer_working_days IS NOT NULL"

# The forms of one day cell, by table: the same keys ``stats.contribution`` counts a form under.
OWNERS = {
    "stat_cell": "COALESCE(f.workroom_id, 0) = stat_cell.workroom_id AND COALESCE(f.category_id, 0) = stat_cell.category_id",
    "stat_owner_cell": "((stat_owner_cell.kind = 'unit' AND f.unit_id = stat_owner_cell.owner_id)"
                       " OR (stat_owner_cell.kind = 'rep' AND f.entered_by_representative_id = stat_owner_cell.owner_id))",
}
KEYS = {"stat_cell": ("workroom_id", "category_id"), "stat_owner_cell": ("kind", "owner_id")}


def upgrade() -> None:
    for table in ("stat_cell", "stat_owner_cell"):
        with op.batch_alter_table(table) as batch:
            for name in (*GAUGES, *BUCKETS):
                batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    for table, owner in OWNERS.items():
        sets = ", ".join(
            f"{name} = (SELECT COUNT(*) FROM opinion_form f WHERE {among} AND {condition}"
            f" AND f.submitted_on = {table}.period AND {owner})"
            for among, conditions in ((OPEN, GAUGES), (ANSWERED, BUCKETS)) for name, condition in conditions.items()
        )
        op.execute(f"UPDATE {table} SET {sets} WHERE grain = 'd'")
        same = " AND ".join(f"d.{key} = {table}.{key}" for key in KEYS[table])
        sums = ", ".join(
            f"{name} = (SELECT COALESCE(SUM(d.{name}), 0) FROM {table} d"
            f" WHERE d.grain = 'd' AND d.month = {table}.period AND {same})"
            for name in (*GAUGES, *BUCKETS)
        )
        op.execute(f"UPDATE {table} SET {sums} WHERE grain = 'm'")


def downgrade() -> None:
    for table in ("stat_cell", "stat_owner_cell"):
        with op.batch_alter_table(table) as batch:
            for name in (*GAUGES, *BUCKETS):
                batch.drop_column(name)
