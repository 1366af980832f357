"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 19:36:53.388442

Column types from novalite.db.types keep microseconds (DATETIME(6)) and long
texts (MEDIUMTEXT) on MySQL/MariaDB; constraint names follow the models'
naming convention, so they are the same on every backend.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, LONG_TEXT, mysql_table_options

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # MySQL/MariaDB: utf8mb4, binary no-pad collation (names compare as on SQLite).
    table_options = mysql_table_options(op.get_bind())
    op.create_table('allocations',
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('instance_uuid', name=op.f('pk_allocations')),
    **table_options,
    )
    op.create_index(op.f('ix_allocations_host'), 'allocations', ['host'], unique=False)

    op.create_table('compute_nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('hypervisor_hostname', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('hypervisor_type', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('hypervisor_version', sa.Integer(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('local_gb', sa.Integer(), nullable=False),
    sa.Column('cpu_info', sa.JSON(), nullable=False),
    sa.Column('supported_instances', sa.JSON(), nullable=False),
    sa.Column('host_ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_nodes')),
    sa.UniqueConstraint('host', name=op.f('uq_compute_nodes_host')),
    sa.UniqueConstraint('uuid', name=op.f('uq_compute_nodes_uuid')),
    **table_options,
    )
    op.create_table('fixed_ips',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_fixed_ips')),
    **table_options,
    )
    op.create_index(op.f('ix_fixed_ips_instance_uuid'), 'fixed_ips', ['instance_uuid'], unique=False)

    op.create_table('flavor_extra_specs',
    sa.Column('flavor_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.PrimaryKeyConstraint('flavor_id', 'key', name=op.f('pk_flavor_extra_specs')),
    **table_options,
    )
    op.create_table('flavors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('flavorid', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('root_gb', sa.Integer(), nullable=False),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=False),
    sa.Column('swap', sa.Integer(), nullable=False),
    sa.Column('rxtx_factor', sa.Double(), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('description', LONG_TEXT, nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flavors')),
    sa.UniqueConstraint('flavorid', name=op.f('uq_flavors_flavorid')),
    sa.UniqueConstraint('name', name=op.f('uq_flavors_name')),
    **table_options,
    )
    op.create_table('images',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('disk_format', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('container_format', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('virtual_size', sa.BigInteger(), nullable=True),
    sa.Column('checksum', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('os_hash_algo', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('os_hash_value', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('visibility', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('min_disk', sa.Integer(), nullable=False),
    sa.Column('min_ram', sa.Integer(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('path', LONG_TEXT, nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    **table_options,
    )
    op.create_index(op.f('ix_images_name'), 'images', ['name'], unique=False)

    op.create_table('instance_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('start_time', DATETIME, nullable=False),
    sa.Column('finish_time', DATETIME, nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_actions')),
    **table_options,
    )
    op.create_index(op.f('ix_instance_actions_instance_uuid'), 'instance_actions', ['instance_uuid'], unique=False)
    op.create_index(op.f('ix_instance_actions_request_id'), 'instance_actions', ['request_id'], unique=False)

    op.create_table('instance_actions_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('start_time', DATETIME, nullable=False),
    sa.Column('finish_time', DATETIME, nullable=True),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('traceback', LONG_TEXT, nullable=True),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('details', LONG_TEXT, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_actions_events')),
    **table_options,
    )
    op.create_index(op.f('ix_instance_actions_events_action_id'), 'instance_actions_events', ['action_id'], unique=False)

    op.create_table('instance_faults',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('details', LONG_TEXT, nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_faults')),
    **table_options,
    )
    op.create_index(op.f('ix_instance_faults_instance_uuid'), 'instance_faults', ['instance_uuid'], unique=False)

    op.create_table('instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('display_description', LONG_TEXT, nullable=True),
    sa.Column('hostname', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('node', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('availability_zone', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('image_ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('flavor', sa.JSON(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('root_gb', sa.Integer(), nullable=False),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=False),
    sa.Column('vm_state', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('task_state', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('power_state', sa.Integer(), nullable=False),
    sa.Column('key_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('key_data', LONG_TEXT, nullable=True),
    sa.Column('user_data', LONG_TEXT, nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('addresses', sa.JSON(), nullable=False),
    sa.Column('config_drive', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('locked_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('locked_reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('launch_index', sa.Integer(), nullable=False),
    sa.Column('reservation_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('launched_at', DATETIME, nullable=True),
    sa.Column('terminated_at', DATETIME, nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.Column('deleted_at', DATETIME, nullable=True),
    sa.Column('deleted', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    sa.UniqueConstraint('uuid', name=op.f('uq_instances_uuid')),
    **table_options,
    )
    op.create_index(op.f('ix_instances_created_at'), 'instances', ['created_at'], unique=False)
    op.create_index(op.f('ix_instances_deleted'), 'instances', ['deleted'], unique=False)
    op.create_index(op.f('ix_instances_host'), 'instances', ['host'], unique=False)
    op.create_index('ix_instances_project_deleted', 'instances', ['project_id', 'deleted'], unique=False)
    op.create_index(op.f('ix_instances_project_id'), 'instances', ['project_id'], unique=False)
    op.create_index(op.f('ix_instances_updated_at'), 'instances', ['updated_at'], unique=False)

    op.create_table('key_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('public_key', LONG_TEXT, nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_pairs')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_key_pairs_user_id_name')),
    **table_options,
    )
    op.create_table('projects',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('domain_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('description', LONG_TEXT, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('domain_id', 'name', name=op.f('uq_projects_domain_id_name')),
    **table_options,
    )
    op.create_table('role_assignments',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'project_id', 'role_id', name=op.f('pk_role_assignments')),
    **table_options,
    )
    op.create_table('roles',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('name', name=op.f('uq_roles_name')),
    **table_options,
    )
    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('binary', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('report_count', sa.Integer(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('forced_down', sa.Boolean(), nullable=False),
    sa.Column('availability_zone', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('host', 'binary', name=op.f('uq_services_host_binary')),
    sa.UniqueConstraint('uuid', name=op.f('uq_services_uuid')),
    **table_options,
    )
    op.create_table('tokens',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issued_at', DATETIME, nullable=False),
    sa.Column('expires_at', DATETIME, nullable=False),
    sa.Column('audit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    **table_options,
    )
    op.create_table('users',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('domain_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('default_project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('domain_id', 'name', name=op.f('uq_users_domain_id_name')),
    **table_options,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes.
    for table in ('users', 'tokens', 'services', 'roles', 'role_assignments', 'projects', 'key_pairs', 'instances', 'instance_faults', 'instance_actions_events', 'instance_actions', 'images', 'flavors', 'flavor_extra_specs', 'fixed_ips', 'compute_nodes', 'allocations'):
        op.drop_table(table)
