"""ports by (network_id, device_owner): a router interface on a network found directly
(the index on network_id alone is its prefix, and goes)

Revision ID: 0005
Revises: 0004
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_ports_network_id_device_owner', 'ports', ['network_id', 'device_owner'],
                    unique=False)
    op.drop_index('ix_ports_network_id', table_name='ports')


def downgrade() -> None:
    op.create_index('ix_ports_network_id', 'ports', ['network_id'], unique=False)
    op.drop_index('ix_ports_network_id_device_owner', table_name='ports')
