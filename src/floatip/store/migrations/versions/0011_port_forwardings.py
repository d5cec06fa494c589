"""floating IP port forwardings (issue 24)

Revision ID: 0011_port_forwardings
Revises: 0010_tags
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_port_forwardings'
down_revision = '0010_tags'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'portforwardings',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('description', sa.String(255), nullable=False, server_default=''),
        sa.Column('floatingip_id', sa.String(36),
                  sa.ForeignKey('floatingips.id', ondelete='CASCADE'), nullable=False),
        sa.Column('internal_port_id', sa.String(36),
                  sa.ForeignKey('ports.id', ondelete='CASCADE'), nullable=False),
        sa.Column('protocol', sa.String(40), nullable=False),
        sa.Column('internal_ip_address', sa.String(64), nullable=False),
        sa.Column('internal_port_start', sa.Integer, nullable=False),
        sa.Column('internal_port_end', sa.Integer, nullable=False),
        sa.Column('external_port_start', sa.Integer, nullable=False),
        sa.Column('external_port_end', sa.Integer, nullable=False),
        sa.Column('revision_number', sa.Integer, nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime, nullable=False),
        sa.Column('updated_at', sa.DateTime, nullable=False),
        sa.UniqueConstraint('floatingip_id', 'protocol', 'external_port_start',
                            'external_port_end',
                            name='uniq_portforwardings0fip0protocol0external'),
        sa.UniqueConstraint('protocol', 'internal_port_id', 'internal_ip_address',
                            'internal_port_start', 'internal_port_end',
                            name='uniq_portforwardings0protocol0internal'))
    op.create_index('ix_portforwardings_project_id', 'portforwardings', ['project_id'])
    op.create_index('ix_portforwardings_floatingip_id', 'portforwardings', ['floatingip_id'])
    op.create_index('ix_portforwardings_internal_port_id', 'portforwardings',
                    ['internal_port_id'])


def downgrade() -> None:
    op.drop_table('portforwardings')
