"""The search index (PostgreSQL's GIN on form_search.document) takes each form at once: fastupdate off

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 12:30:00

With GIN's default ``fastupdate``, new entries wait in a pending list until it passes
``gin_pending_list_limit`` (4 MB); the backend whose insert crosses it then merges the whole list into the
index inside its own transaction. On the submission path that merge landed on one group-commit batch every
few thousand forms and held all of its submitters for a quarter of a second: at 1,000,000 forms, submissions'
p99 at 64 connections was 235–266 ms with it and 94–113 ms without it (docs/performance.md, "Round four").
Each insert now costs the index a little more (PostgreSQL 0.21 -> 0.33 ms per submission) and none pays for
the others. The list an existing index holds is merged now. SQLite's FTS5 index is unaffected.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER INDEX ix_form_search_document SET (fastupdate = off)")
    op.execute("SELECT gin_clean_pending_list('ix_form_search_document'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER INDEX ix_form_search_document RESET (fastupdate)")
