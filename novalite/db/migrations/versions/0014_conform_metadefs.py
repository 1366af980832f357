"""Glance's metadata definitions (namespaces, their entries, resource types) and tasks

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table_options = mysql_table_options(op.get_bind())
    op.create_table('metadef_namespaces',
    sa.Column('namespace', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('visibility', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('namespace', name=op.f('pk_metadef_namespaces')),
    **table_options,
    )
    op.create_index(op.f('ix_metadef_namespaces_owner'), 'metadef_namespaces', ['owner'], unique=False)
    op.create_table('metadef_entries',
    sa.Column('namespace', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'kind', 'name', name=op.f('pk_metadef_entries')),
    **table_options,
    )
    op.create_table('metadef_resource_types',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_metadef_resource_types')),
    **table_options,
    )
    op.create_table('image_tasks',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('input', sa.JSON(), nullable=False),
    sa.Column('image_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_tasks')),
    **table_options,
    )
    op.create_index(op.f('ix_image_tasks_owner'), 'image_tasks', ['owner'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_image_tasks_owner'), table_name='image_tasks')
    op.drop_table('image_tasks')
    op.drop_table('metadef_resource_types')
    op.drop_table('metadef_entries')
    op.drop_index(op.f('ix_metadef_namespaces_owner'), table_name='metadef_namespaces')
    op.drop_table('metadef_namespaces')
