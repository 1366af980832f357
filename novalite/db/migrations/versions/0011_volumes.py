"""block storage: volumes, their snapshots and attachments (the Cinder subset)

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _s(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table('volumes',
    sa.Column('id', _s(36), nullable=False),
    sa.Column('project_id', _s(64), nullable=False),
    sa.Column('user_id', _s(64), nullable=False),
    sa.Column('name', _s(255), nullable=True),
    sa.Column('description', _s(255), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', _s(32), nullable=False),
    sa.Column('volume_type', _s(255), nullable=False),
    sa.Column('availability_zone', _s(255), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('bootable', sa.Boolean(), nullable=False),
    sa.Column('image_id', _s(36), nullable=True),
    sa.Column('image_metadata', sa.JSON(), nullable=False),
    sa.Column('snapshot_id', _s(36), nullable=True),
    sa.Column('source_volid', _s(36), nullable=True),
    sa.Column('backend', _s(64), nullable=False),
    sa.Column('provider_location', _s(1024), nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volumes')),
    **mysql_table_options(op.get_bind()),
    )
    op.create_index(op.f('ix_volumes_project_id'), 'volumes', ['project_id'], unique=False)
    op.create_table('volume_snapshots',
    sa.Column('id', _s(36), nullable=False),
    sa.Column('volume_id', _s(36), nullable=False),
    sa.Column('project_id', _s(64), nullable=False),
    sa.Column('user_id', _s(64), nullable=False),
    sa.Column('name', _s(255), nullable=True),
    sa.Column('description', _s(255), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', _s(32), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('provider_location', _s(1024), nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_snapshots')),
    **mysql_table_options(op.get_bind()),
    )
    op.create_index(op.f('ix_volume_snapshots_volume_id'), 'volume_snapshots', ['volume_id'],
                    unique=False)
    op.create_index(op.f('ix_volume_snapshots_project_id'), 'volume_snapshots',
                    ['project_id'], unique=False)
    op.create_table('volume_attachments',
    sa.Column('id', _s(36), nullable=False),
    sa.Column('volume_id', _s(36), nullable=False),
    sa.Column('instance_uuid', _s(36), nullable=False),
    sa.Column('attached_host', _s(255), nullable=True),
    sa.Column('device', _s(255), nullable=True),
    sa.Column('attach_status', _s(32), nullable=False),
    sa.Column('boot_index', sa.Integer(), nullable=True),
    sa.Column('delete_on_termination', sa.Boolean(), nullable=False),
    sa.Column('tag', _s(60), nullable=True),
    sa.Column('attached_at', DATETIME, nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_attachments')),
    **mysql_table_options(op.get_bind()),
    )
    op.create_index(op.f('ix_volume_attachments_volume_id'), 'volume_attachments',
                    ['volume_id'], unique=False)
    op.create_index(op.f('ix_volume_attachments_instance_uuid'), 'volume_attachments',
                    ['instance_uuid'], unique=False)


def downgrade() -> None:
    for table, columns in (('volume_attachments', ('instance_uuid', 'volume_id')),
                           ('volume_snapshots', ('project_id', 'volume_id')),
                           ('volumes', ('project_id',))):
        for column in columns:
            op.drop_index(op.f(f'ix_{table}_{column}'), table_name=table)
        op.drop_table(table)
