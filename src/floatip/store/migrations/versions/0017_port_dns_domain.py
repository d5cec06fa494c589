"""Ports' dns_domain (Neutron's dns-domain-ports; issue 24).

Revision ID: 0017_port_dns_domain
Revises: 0016_pool_rbac
"""
from alembic import op
import sqlalchemy as sa


revision = '0017_port_dns_domain'
down_revision = '0016_pool_rbac'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_domain', sa.String(255), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.drop_column('dns_domain')
