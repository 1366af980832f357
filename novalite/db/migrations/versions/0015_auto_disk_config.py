"""servers: OS-DCF:diskConfig (Nova's instances.auto_disk_config)

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances') as batch:
        # Nullable: rows written before this revision have none (read as MANUAL).
        batch.add_column(sa.Column('auto_disk_config', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('auto_disk_config')
