"""quotas: per-project limits set by admins (the defaults come from the configuration)

Revision ID: 0008_quotas
Revises: 0007_security_groups
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_quotas'
down_revision = '0007_security_groups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quotas',
                    sa.Column('id', sa.String(36), primary_key=True),
                    sa.Column('project_id', sa.String(255), nullable=False),
                    sa.Column('resource', sa.String(255), nullable=False),
                    sa.Column('limit', sa.Integer(), nullable=False),
                    sa.UniqueConstraint('project_id', 'resource',
                                        name='uniq_quotas0project_id0resource'))
    op.create_index('ix_quotas_project_id', 'quotas', ['project_id'])


def downgrade() -> None:
    op.drop_index('ix_quotas_project_id', table_name='quotas')
    op.drop_table('quotas')
