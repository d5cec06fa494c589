"""security groups, rules, address groups, port security, allowed address pairs (issue 22)

Ports and networks made before: port security off for the ports (they were not filtered and
stay so until set), on for the networks (new ports are filtered).

Revision ID: 0007_security_groups
Revises: 0006_events
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_security_groups'
down_revision = '0006_events'
branch_labels = None
depends_on = None


def _standard() -> list:
    return [sa.Column('id', sa.String(36), primary_key=True),
            sa.Column('project_id', sa.String(255), nullable=False, index=True),
            sa.Column('name', sa.String(255), nullable=False),
            sa.Column('description', sa.String(255), nullable=False),
            sa.Column('revision_number', sa.Integer(), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False)]


def upgrade() -> None:
    op.create_table('securitygroups', *_standard(),
                    sa.Column('stateful', sa.Boolean(), nullable=False))
    op.create_table('address_groups', *_standard(),
                    sa.Column('addresses', sa.JSON(), nullable=False))
    op.create_table(
        'default_security_groups',
        sa.Column('project_id', sa.String(255), primary_key=True),
        sa.Column('security_group_id', sa.String(36),
                  sa.ForeignKey('securitygroups.id', ondelete='CASCADE'), nullable=False,
                  unique=True))
    op.create_table(
        'securitygrouprules',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, index=True),
        sa.Column('description', sa.String(255), nullable=False),
        sa.Column('security_group_id', sa.String(36),
                  sa.ForeignKey('securitygroups.id', ondelete='CASCADE'), nullable=False,
                  index=True),
        sa.Column('remote_group_id', sa.String(36),
                  sa.ForeignKey('securitygroups.id', ondelete='CASCADE'), nullable=True,
                  index=True),
        sa.Column('remote_address_group_id', sa.String(36),
                  sa.ForeignKey('address_groups.id'), nullable=True, index=True),
        sa.Column('direction', sa.String(16), nullable=False),
        sa.Column('ethertype', sa.String(8), nullable=False),
        sa.Column('protocol', sa.String(40), nullable=True),
        sa.Column('port_range_min', sa.Integer(), nullable=True),
        sa.Column('port_range_max', sa.Integer(), nullable=True),
        sa.Column('remote_ip_prefix', sa.String(255), nullable=True),
        sa.Column('revision_number', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False))
    op.create_table(
        'securitygroupportbindings',
        sa.Column('port_id', sa.String(36), sa.ForeignKey('ports.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('security_group_id', sa.String(36), sa.ForeignKey('securitygroups.id'),
                  primary_key=True, index=True))
    with op.batch_alter_table('ports') as batch:
        batch.add_column(sa.Column('port_security_enabled', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('allowed_address_pairs', sa.JSON(), nullable=False,
                                   server_default='[]'))
    with op.batch_alter_table('networks') as batch:
        batch.add_column(sa.Column('port_security_enabled', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('networks') as batch:
        batch.drop_column('port_security_enabled')
    with op.batch_alter_table('ports') as batch:
        batch.drop_column('allowed_address_pairs')
        batch.drop_column('port_security_enabled')
    for t in ('securitygroupportbindings', 'securitygrouprules', 'default_security_groups',
              'address_groups', 'securitygroups'):
        op.drop_table(t)
