"""Trunks and their subports (Neutron's trunk extension, API only; issue 24).

Revision ID: 0018_trunks
Revises: 0017_port_dns_domain
"""
from alembic import op
import sqlalchemy as sa


revision = '0018_trunks'
down_revision = '0017_port_dns_domain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trunks',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('name', sa.String(255), nullable=False, server_default=''),
        sa.Column('description', sa.String(255), nullable=False, server_default=''),
        sa.Column('revision_number', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('admin_state_up', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column('status', sa.String(16), nullable=False, server_default='DOWN'),
        sa.Column('port_id', sa.String(36), sa.ForeignKey('ports.id'), nullable=False,
                  unique=True))
    op.create_index('ix_trunks_project_id', 'trunks', ['project_id'])
    op.create_table(
        'subports',
        sa.Column('port_id', sa.String(36), sa.ForeignKey('ports.id'), primary_key=True),
        sa.Column('trunk_id', sa.String(36), sa.ForeignKey('trunks.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('segmentation_type', sa.String(32), nullable=False),
        sa.Column('segmentation_id', sa.Integer(), nullable=False),
        sa.UniqueConstraint('trunk_id', 'segmentation_type', 'segmentation_id',
                            name='uniq_subport0trunk_id0segmentation_type0segmentation_id'))
    op.create_index('ix_subports_trunk_id', 'subports', ['trunk_id'])


def downgrade() -> None:
    op.drop_table('subports')
    op.drop_table('trunks')
