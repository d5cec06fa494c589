"""ports: floatip-metadata extension (user data, public keys)

Revision ID: 0002_port_metadata
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_port_metadata'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ports') as batch:
        batch.add_column(sa.Column('user_data', sa.Text(), nullable=True))
        batch.add_column(sa.Column('public_keys', sa.JSON(), nullable=False,
                                   server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('ports') as batch:
        batch.drop_column('public_keys')
        batch.drop_column('user_data')
