"""webhook claims: the claim's indexes over pending deliveries; failing and paused webhooks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:10:00

Two partial indexes over pending deliveries (on both engines) let a claim read only what it takes: a
webhook's pending deliveries in id order with their due time, and its leased ones. The index on
(status, next_attempt_at) goes: with statistics from before a backlog the planner chose it for the claim
and read every due delivery. A webhook records since when it has been failing, and when and why the worker
paused it (services/webhooks.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
LEASED = sa.text("status = 'pending' AND claimed_until IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('paused_reason', sa.String(length=16), nullable=True))
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_pending_webhook_id_id', ['webhook_id', 'id', 'next_attempt_at'],
                              unique=False, postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('ix_webhook_delivery_pending_webhook_id_claimed_until', ['webhook_id', 'claimed_until'],
                              unique=False, postgresql_where=LEASED, sqlite_where=LEASED)
        batch_op.drop_index('ix_webhook_delivery_status_next_attempt_at')


def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.drop_index('ix_webhook_delivery_pending_webhook_id_claimed_until')
        batch_op.drop_index('ix_webhook_delivery_pending_webhook_id_id')
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.drop_column('paused_reason')
        batch_op.drop_column('paused_at')
        batch_op.drop_column('failing_since')
