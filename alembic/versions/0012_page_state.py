"""page_state: the page a browser's failed form POST rendered, kept minutes for post-redirect-get

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:30:00

A form POST from a browser that fails (a validation message, a limit) is answered with a redirect to a GET
that shows the kept page (app/http/prg.py), so reloading or going back never posts again. The page holds
what was typed, so its body is encrypted like personal data; rows expire after minutes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('page_state',
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_page_state'))
    )
    with op.batch_alter_table('page_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_page_state_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('page_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_page_state_expires_at'))
    op.drop_table('page_state')
