"""QoS policies, bandwidth limit rules; qos_policy_id on floating IPs and routers (issue 24)

Revision ID: 0012_qos
Revises: 0011_port_forwardings
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_qos'
down_revision = '0011_port_forwardings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'qos_policies',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('name', sa.String(255), nullable=False, server_default=''),
        sa.Column('description', sa.String(255), nullable=False, server_default=''),
        sa.Column('shared', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('is_default', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('revision_number', sa.Integer, nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('updated_at', sa.DateTime, nullable=False))
    op.create_index('ix_qos_policies_project_id', 'qos_policies', ['project_id'])
    op.create_table(
        'qos_bandwidth_limit_rules',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('qos_policy_id', sa.String(36),
                  sa.ForeignKey('qos_policies.id', ondelete='CASCADE'), nullable=False),
        sa.Column('max_kbps', sa.Integer, nullable=False, server_default='0'),
        sa.Column('max_burst_kbps', sa.Integer, nullable=False, server_default='0'),
        sa.Column('direction', sa.String(16), nullable=False, server_default='egress'),
        sa.UniqueConstraint('qos_policy_id', 'direction',
                            name='qos_bandwidth_rules0qos_policy_id0direction'))
    op.create_index('ix_qos_bandwidth_limit_rules_qos_policy_id', 'qos_bandwidth_limit_rules',
                    ['qos_policy_id'])
    for table in ('floatingips', 'routers'):
        op.add_column(table, sa.Column('qos_policy_id', sa.String(36), nullable=True))
        op.create_index(f'ix_{table}_qos_policy_id', table, ['qos_policy_id'])


def downgrade() -> None:
    for table in ('floatingips', 'routers'):
        op.drop_index(f'ix_{table}_qos_policy_id', table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('qos_policy_id')
    op.drop_table('qos_bandwidth_limit_rules')
    op.drop_table('qos_policies')
