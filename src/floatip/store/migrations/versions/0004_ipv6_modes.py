"""IPv6 subnet modes

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ipv6_ra_mode', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('ipv6_address_mode', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_column('ipv6_address_mode')
        batch_op.drop_column('ipv6_ra_mode')
