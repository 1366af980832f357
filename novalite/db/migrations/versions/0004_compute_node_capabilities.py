"""compute nodes report their driver's capabilities

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
    # Nullable: rows written before this revision have none until their host reports.
    op.add_column('compute_nodes', sa.Column('capabilities', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('compute_nodes') as batch:
        batch.drop_column('capabilities')
