"""instance system metadata (the password a guest posts to the metadata service)

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import mysql_table_options

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table_options = mysql_table_options(op.get_bind())
    op.create_table(
        'instance_system_metadata',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_system_metadata')),
        sa.UniqueConstraint('instance_uuid', 'key',
                            name=op.f('uq_instance_system_metadata_instance_uuid_key')),
        **table_options,
    )
    op.create_index(op.f('ix_instance_system_metadata_instance_uuid'),
                    'instance_system_metadata', ['instance_uuid'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_instance_system_metadata_instance_uuid'),
                  table_name='instance_system_metadata')
    op.drop_table('instance_system_metadata')
