"""migrations: resizes, cold and live migrations (Nova's ``migrations`` table)

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        'migrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', text(length=36), nullable=False),
        sa.Column('instance_uuid', text(length=36), nullable=False),
        sa.Column('source_compute', text(length=255), nullable=True),
        sa.Column('dest_compute', text(length=255), nullable=True),
        sa.Column('source_node', text(length=255), nullable=True),
        sa.Column('dest_node', text(length=255), nullable=True),
        sa.Column('dest_host', text(length=255), nullable=True),
        sa.Column('old_instance_type_id', sa.Integer(), nullable=True),
        sa.Column('new_instance_type_id', sa.Integer(), nullable=True),
        sa.Column('old_flavor', sa.JSON(), nullable=False),
        sa.Column('new_flavor', sa.JSON(), nullable=False),
        sa.Column('status', text(length=255), nullable=False),
        sa.Column('migration_type', text(length=255), nullable=False),
        sa.Column('hidden', sa.Boolean(), nullable=False),
        sa.Column('user_id', text(length=64), nullable=True),
        sa.Column('project_id', text(length=64), nullable=True),
        sa.Column('created_at', DATETIME, nullable=False),
        sa.Column('updated_at', DATETIME, nullable=True),
        sa.Column('deleted_at', DATETIME, nullable=True),
        sa.Column('deleted', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_migrations')),
        sa.UniqueConstraint('uuid', name=op.f('uq_migrations_uuid')),
        **mysql_table_options(op.get_bind()),
    )
    op.create_index(op.f('ix_migrations_instance_uuid'), 'migrations', ['instance_uuid'])
    op.create_index(op.f('ix_migrations_status'), 'migrations', ['status'])
    op.create_index(op.f('ix_migrations_created_at'), 'migrations', ['created_at'])


def downgrade() -> None:
    op.drop_table('migrations')
