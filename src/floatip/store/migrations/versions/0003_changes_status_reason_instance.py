"""change feed, status reasons, instance id, paging indexes

Revision ID: 0003
Revises: 0002_port_metadata
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002_port_metadata'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('floatip_changes',
                    sa.Column('generation', sa.Integer(), nullable=False),
                    sa.Column('resource', sa.String(length=32), nullable=False),
                    sa.Column('resource_id', sa.String(length=36), nullable=False),
                    sa.PrimaryKeyConstraint('generation', 'resource', 'resource_id'))
    op.create_table('floatip_info',
                    sa.Column('key', sa.String(length=64), nullable=False),
                    sa.Column('value', sa.String(length=255), nullable=False),
                    sa.PrimaryKeyConstraint('key'))
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
        batch_op.create_index('ix_floatingips_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_floatingips_floating_port_id', ['floating_port_id'],
                              unique=False)
        batch_op.create_index('ix_floatingips_router_id', ['router_id'], unique=False)
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.create_index('ix_ports_created_at_id', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.drop_index('ix_ports_created_at_id')
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.drop_index('ix_floatingips_router_id')
        batch_op.drop_index('ix_floatingips_floating_port_id')
        batch_op.drop_index('ix_floatingips_created_at_id')
        batch_op.drop_column('status_reason')
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_column('status_reason')
    op.drop_table('floatip_info')
    op.drop_table('floatip_changes')
