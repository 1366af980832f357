"""server groups and host aggregates

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table_options = mysql_table_options(op.get_bind())
    op.create_table('instance_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('policy', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_groups')),
    sa.UniqueConstraint('uuid', name=op.f('uq_instance_groups_uuid')),
    **table_options,
    )
    op.create_index(op.f('ix_instance_groups_project_id'), 'instance_groups', ['project_id'],
                    unique=False)

    op.create_table('instance_group_members',
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('instance_uuid', name=op.f('pk_instance_group_members')),
    **table_options,
    )
    op.create_index(op.f('ix_instance_group_members_group_id'), 'instance_group_members',
                    ['group_id'], unique=False)

    op.create_table('aggregates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aggregates')),
    sa.UniqueConstraint('name', name=op.f('uq_aggregates_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_aggregates_uuid')),
    **table_options,
    )

    op.create_table('aggregate_hosts',
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.PrimaryKeyConstraint('aggregate_id', 'host', name=op.f('pk_aggregate_hosts')),
    **table_options,
    )

    op.create_table('aggregate_metadata',
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.PrimaryKeyConstraint('aggregate_id', 'key', name=op.f('pk_aggregate_metadata')),
    **table_options,
    )


def downgrade() -> None:
    op.drop_table('aggregate_metadata')
    op.drop_table('aggregate_hosts')
    op.drop_table('aggregates')
    op.drop_index(op.f('ix_instance_group_members_group_id'),
                  table_name='instance_group_members')
    op.drop_table('instance_group_members')
    op.drop_index(op.f('ix_instance_groups_project_id'), table_name='instance_groups')
    op.drop_table('instance_groups')
