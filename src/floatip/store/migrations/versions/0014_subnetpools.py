"""Subnet pools and address scopes (Neutron's subnet_allocation, address-scope);
subnetpool_id on subnets (issue 24).

Revision ID: 0014_subnetpools
Revises: 0013_rbac
"""
from alembic import op
import sqlalchemy as sa


revision = '0014_subnetpools'
down_revision = '0013_rbac'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'address_scopes',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('name', sa.String(255), nullable=False, server_default=''),
        sa.Column('shared', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('ip_version', sa.Integer, nullable=False))
    op.create_index('ix_address_scopes_project_id', 'address_scopes', ['project_id'])
    op.create_table(
        'subnetpools',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('name', sa.String(255), nullable=False, server_default=''),
        sa.Column('description', sa.String(255), nullable=False, server_default=''),
        sa.Column('revision_number', sa.Integer, nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('updated_at', sa.DateTime, nullable=False),
        sa.Column('ip_version', sa.Integer, nullable=False),
        sa.Column('default_prefixlen', sa.Integer, nullable=False),
        sa.Column('min_prefixlen', sa.Integer, nullable=False),
        sa.Column('max_prefixlen', sa.Integer, nullable=False),
        sa.Column('shared', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('is_default', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('default_quota', sa.Integer, nullable=True),
        sa.Column('address_scope_id', sa.String(36), nullable=True),
        sa.Column('prefixes', sa.JSON, nullable=False))
    op.create_index('ix_subnetpools_project_id', 'subnetpools', ['project_id'])
    op.create_index('ix_subnetpools_address_scope_id', 'subnetpools', ['address_scope_id'])
    op.add_column('subnets', sa.Column('subnetpool_id', sa.String(36), nullable=True))
    op.create_index('ix_subnets_subnetpool_id', 'subnets', ['subnetpool_id'])


def downgrade() -> None:
    op.drop_index('ix_subnets_subnetpool_id', 'subnets')
    with op.batch_alter_table('subnets') as batch:
        batch.drop_column('subnetpool_id')
    op.drop_table('subnetpools')
    op.drop_table('address_scopes')
