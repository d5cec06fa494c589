"""event history: status changes and repairs with their reasons and causes

Revision ID: 0006_events
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_events'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('floatip_events',
                    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('at', sa.DateTime(), nullable=False),
                    sa.Column('resource', sa.String(length=32), nullable=False),
                    sa.Column('resource_id', sa.String(length=36), nullable=False),
                    sa.Column('project_id', sa.String(length=255), nullable=False),
                    sa.Column('kind', sa.String(length=16), nullable=False),
                    sa.Column('old_status', sa.String(length=16), nullable=True),
                    sa.Column('status', sa.String(length=16), nullable=True),
                    sa.Column('reason', sa.Text(), nullable=True),
                    sa.Column('cause', sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_floatip_events_resource_id', 'floatip_events', ['resource_id'])
    op.create_index('ix_floatip_events_project_id', 'floatip_events', ['project_id'])


def downgrade() -> None:
    op.drop_index('ix_floatip_events_project_id', table_name='floatip_events')
    op.drop_index('ix_floatip_events_resource_id', table_name='floatip_events')
    op.drop_table('floatip_events')
