"""tags of networks, subnets, ports, routers, floating IPs, security groups (issue 24)

Revision ID: 0010_tags
Revises: 0009_change_xids
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_tags'
down_revision = '0009_change_xids'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tags',
                    sa.Column('resource', sa.String(32), primary_key=True),
                    sa.Column('resource_id', sa.String(36), primary_key=True),
                    sa.Column('tag', sa.String(255), primary_key=True))
    op.create_index('ix_tags_resource_tag', 'tags', ['resource', 'tag'])


def downgrade() -> None:
    op.drop_index('ix_tags_resource_tag', table_name='tags')
    op.drop_table('tags')
