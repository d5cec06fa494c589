"""the change log on PostgreSQL: a change's generation is its transaction's id (64 bits)

Revision ID: 0009_change_xids
Revises: 0008_quotas
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_change_xids'
down_revision = '0008_quotas'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's INTEGER is 64 bits already, and it keeps its counter
    op.alter_column('floatip_changes', 'generation', type_=sa.BigInteger())
    op.alter_column('floatip_meta', 'value', type_=sa.BigInteger())
    # the counter's generations mean nothing as transaction ids: the feed starts over and
    # an agent still at one of them reads everything once
    op.execute("DELETE FROM floatip_changes")
    op.execute("DELETE FROM floatip_meta WHERE key = 'pruned'")
    op.execute("INSERT INTO floatip_meta (key, value) VALUES "
               "('pruned', pg_current_xact_id()::text::bigint)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DELETE FROM floatip_changes")
    op.execute("DELETE FROM floatip_meta WHERE key = 'pruned'")
    op.alter_column('floatip_changes', 'generation', type_=sa.Integer())
    op.alter_column('floatip_meta', 'value', type_=sa.Integer())
