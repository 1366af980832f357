"""flavor access lists and quota classes

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import mysql_table_options

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flavor_projects',
    sa.Column('flavor_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.PrimaryKeyConstraint('flavor_id', 'project_id', name=op.f('pk_flavor_projects')),
    **mysql_table_options(op.get_bind()),
    )
    op.create_table('quota_classes',
    sa.Column('class_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('class_name', 'resource', name=op.f('pk_quota_classes')),
    **mysql_table_options(op.get_bind()),
    )


def downgrade() -> None:
    op.drop_table('quota_classes')
    op.drop_table('flavor_projects')
