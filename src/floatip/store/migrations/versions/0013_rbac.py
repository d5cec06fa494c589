"""Network RBAC policies (Neutron's networkrbacs): networks shared with chosen projects
(issue 24). Existing shared/external networks get their ``*`` entries, as Neutron has them.

Revision ID: 0013_rbac
Revises: 0012_qos
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0013_rbac'
down_revision = '0012_qos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'networkrbacs',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('project_id', sa.String(255), nullable=False, server_default=''),
        sa.Column('object_id', sa.String(36),
                  sa.ForeignKey('networks.id', ondelete='CASCADE'), nullable=False),
        sa.Column('action', sa.String(255), nullable=False),
        sa.Column('target_project', sa.String(255), nullable=False),
        sa.UniqueConstraint('action', 'object_id', 'target_project',
                            name='uniq_networkrbacs0target_project0object_id0action'))
    op.create_index('ix_networkrbacs_project_id', 'networkrbacs', ['project_id'])
    op.create_index('ix_networkrbacs_object_id', 'networkrbacs', ['object_id'])
    op.create_index('ix_networkrbacs_target_project', 'networkrbacs', ['target_project'])
    nets = op.get_bind().execute(sa.text(
        "SELECT id, project_id, shared, external FROM networks")).fetchall()
    rows = [{'id': str(uuid.uuid4()), 'project_id': pid, 'object_id': nid, 'action': action,
             'target_project': '*'}
            for nid, pid, shared, external in nets
            for action, on in (('access_as_shared', shared), ('access_as_external', external))
            if on]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table('networkrbacs')
