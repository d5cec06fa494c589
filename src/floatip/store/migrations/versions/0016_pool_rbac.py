"""RBAC entries for subnet pools and address scopes (Neutron's subnetpoolrbacs,
addressscoperbacs; rbac-subnetpool, rbac-address-scope). Shared pools and scopes get their
``*`` entries, as Neutron has them.

Revision ID: 0016_pool_rbac
Revises: 0015_dhcp_dns
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0016_pool_rbac'
down_revision = '0015_dhcp_dns'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, parent in (('subnetpoolrbacs', 'subnetpools'),
                          ('addressscoperbacs', 'address_scopes')):
        t = op.create_table(
            table,
            sa.Column('id', sa.String(36), primary_key=True),
            sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
            sa.Column('object_id', sa.String(36),
                      sa.ForeignKey(f'{parent}.id', ondelete='CASCADE'), nullable=False),
            sa.Column('action', sa.String(255), nullable=False),
            sa.Column('target_project', sa.String(255), nullable=False),
            sa.UniqueConstraint('action', 'object_id', 'target_project',
                                name=f'uniq_{table}0target0object0action'))
        for col in ('project_id', 'object_id', 'target_project'):
            op.create_index(f'ix_{table}_{col}', table, [col])
        rows = op.get_bind().execute(sa.text(
            f"SELECT id, project_id FROM {parent} WHERE shared")).fetchall()
        if rows:
            op.bulk_insert(t, [{'id': str(uuid.uuid4()), 'project_id': pid, 'object_id': oid,
                                'action': 'access_as_shared', 'target_project': '*'}
                               for oid, pid in rows])


def downgrade() -> None:
    op.drop_table('addressscoperbacs')
    op.drop_table('subnetpoolrbacs')
