"""An index on routers.gw_port_id: the one foreign key to ports without one. Every DELETE
of a port checks that no router has it as its gateway port (PostgreSQL's foreign key
trigger, SQLite's foreign key check): without the index, a read of every router.

Revision ID: 0019_router_gw_port_index
Revises: 0018_trunks
"""
from alembic import op


revision = '0019_router_gw_port_index'
down_revision = '0018_trunks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_routers_gw_port_id', 'routers', ['gw_port_id'])
