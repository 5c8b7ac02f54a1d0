"""form_term, topic, topic_member: similar forms and the topics they group into (issue 19.2, 19.4)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 03:00:00

Forms are indexed after they are saved, by the worker (app/services/similar_forms.py): nothing is filled
here. Existing forms are indexed by the worker's rounds, oldest first, or at once by
`minyi similar index`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('form_term',
    sa.Column('term', sa.String(length=24), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_form_term_form_id_opinion_form'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('term', 'form_id', name=op.f('pk_form_term'))
    )
    op.create_table('topic',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_form_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('keywords', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['first_form_id'], ['opinion_form.id'],
                            name=op.f('fk_topic_first_form_id_opinion_form'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topic'))
    )
    op.create_table('topic_member',
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('workroom_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['form_id'], ['opinion_form.id'], name=op.f('fk_topic_member_form_id_opinion_form'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topic.id'], name=op.f('fk_topic_member_topic_id_topic'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('form_id', name=op.f('pk_topic_member'))
    )
    with op.batch_alter_table('topic_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_member_topic_id'), ['topic_id'], unique=False)
        batch_op.create_index('ix_topic_member_submitted_at_topic_id', ['submitted_at', 'topic_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('topic_member', schema=None) as batch_op:
        batch_op.drop_index('ix_topic_member_submitted_at_topic_id')
        batch_op.drop_index(batch_op.f('ix_topic_member_topic_id'))
    op.drop_table('topic_member')
    op.drop_table('topic')
    op.drop_table('form_term')
