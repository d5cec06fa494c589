"""Ports' extra DHCP options and DNS names, networks' and floating IPs' DNS domains
(Neutron's extra_dhcp_opt and dns-integration; issue 24).

Revision ID: 0015_dhcp_dns
Revises: 0014_subnetpools
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_dhcp_dns'
down_revision = '0014_subnetpools'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra_dhcp_opts', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('dns_name', sa.String(255), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_domain', sa.String(255), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_name', sa.String(255), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('dns_domain', sa.String(255), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.drop_column('dns_domain')
        batch_op.drop_column('dns_name')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('dns_domain')
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.drop_column('dns_name')
        batch_op.drop_column('extra_dhcp_opts')
