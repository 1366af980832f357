"""servers: access IPs, tags and personality files on instances

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('access_ip_v4', sqlmodel.sql.sqltypes.AutoString(length=39), nullable=True))
        batch.add_column(sa.Column('access_ip_v6', sqlmodel.sql.sqltypes.AutoString(length=39), nullable=True))
        # Nullable: rows written before this revision have none (read as empty).
        batch.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('injected_files', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances') as batch:
        for name in ('injected_files', 'tags', 'access_ip_v6', 'access_ip_v4'):
            batch.drop_column(name)
