"""working calendar: holidays and make-up workdays owned by the office

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:10:00

``calendar_day`` holds one row per statutory holiday (放假) or make-up workday (调休上班), seeded here
from the ``chinese-calendar`` package's data for every year it knows (2004–2026 in 1.11.0); the office
enters later years from the State Council's notice. ``calendar_revision`` holds the one token that
changes with every write to it, so each process knows when to rebuild its working-day index.
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _package_days() -> list[dict[str, object]]:
    """Every day the package lists, with its Chinese name: holidays (weekend days inside a holiday block
    included) and make-up workdays (named after the holiday they make up for)."""
    from chinese_calendar import constants

    def chinese(value: object) -> str:
        try:
            return str(constants.Holiday(value).chinese)
        except ValueError:
            return str(value)[:64]

    days = [(day, 'holiday', chinese(value)) for day, value in constants.holidays.items()]
    days += [(day, 'workday', chinese(value)) for day, value in constants.workdays.items()
             if day not in constants.holidays]
    return [{'day_on': day, 'kind': kind, 'name': name} for day, kind, name in sorted(days)]


def upgrade() -> None:
    calendar_day = op.create_table(
        'calendar_day',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day_on', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_day')),
        sa.UniqueConstraint('day_on', name=op.f('uq_calendar_day_day_on')),
    )
    calendar_revision = op.create_table(
        'calendar_revision',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_revision')),
    )
    days = _package_days()
    # Naive UTC on SQLite, as app.models.base.UTCDateTime writes it; timestamptz on PostgreSQL.
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    op.bulk_insert(calendar_day, [{**day, 'source': 'seeded', 'created_at': now, 'updated_at': now} for day in days])
    # The seed's token is a digest of its content: two databases seeded alike share one index in a process.
    digest = hashlib.sha256(repr([(d['day_on'].isoformat(), d['kind'], d['name']) for d in days]).encode())
    op.bulk_insert(calendar_revision, [{'id': 1, 'token': 'seed-' + digest.hexdigest()[:40], 'changed_at': now}])


def downgrade() -> None:
    op.drop_table('calendar_revision')
    op.drop_table('calendar_day')
