"""open311: service descriptions and keywords, form coordinates, the published-forms index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The seeded categories (0001) as Open311 services: what each covers and the words residents search with.
SEED_DESCRIPTIONS = {
    "urban_traffic": ("道路、桥梁、公交、停车、路灯、交通安全等城建交通方面的意见建议。",
                      "道路,修路,公交,停车,路灯,红绿灯,桥梁,拆迁"),
    "environment": ("垃圾清运、河道水质、噪声、油烟、绿化等环境卫生方面的意见建议。",
                    "垃圾,河道,污水,噪声,油烟,绿化,卫生"),
    "public_security": ("治安、消防、电动车、矛盾纠纷等社会治安方面的意见建议。",
                        "治安,消防,电动车,纠纷,安全,监控"),
    "livelihood": ("养老、社保、低保、住房、水电气等民生保障方面的意见建议。",
                   "养老,社保,医保,低保,住房,供水,燃气"),
    "education_health": ("学校、托育、医院、社区卫生服务等教育卫生方面的意见建议。",
                         "学校,入学,托育,医院,看病,卫生服务站"),
    "agriculture": ("农田水利、种植养殖、农村道路、村容村貌等农业农村方面的意见建议。",
                    "农田,水利,种植,养殖,村道,村容,土地"),
    "economy": ("企业发展、就业创业、营商环境等经济发展方面的意见建议。",
                "企业,就业,创业,营商环境,招工,市场"),
    "other": ("不属于以上类别的其他意见建议。", "其他,建议"),
}


def upgrade() -> None:
    with op.batch_alter_table('category', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('keywords', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('workroom', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('address_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('media_url', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_opinion_form_public_submitted_at', ['submitted_at'], unique=False,
                              postgresql_where=sa.text('public'), sqlite_where=sa.text('public = 1'))

    category = sa.table('category', sa.column('code', sa.String), sa.column('description', sa.Text),
                        sa.column('keywords', sa.String))
    for code, (description, keywords) in SEED_DESCRIPTIONS.items():
        op.execute(category.update().where(category.c.code == code, category.c.description == '')
                   .values(description=description, keywords=keywords))


def downgrade() -> None:
    with op.batch_alter_table('opinion_form', schema=None) as batch_op:
        batch_op.drop_index('ix_opinion_form_public_submitted_at',
                            postgresql_where=sa.text('public'), sqlite_where=sa.text('public = 1'))
        batch_op.drop_column('media_url')
        batch_op.drop_column('address_id')
        batch_op.drop_column('longitude')
        batch_op.drop_column('latitude')
    with op.batch_alter_table('workroom', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
    with op.batch_alter_table('category', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('keywords')
        batch_op.drop_column('description')
