"""networking: networks, subnets, ports and their fixed IPs, security groups and rules

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table_options = mysql_table_options(op.get_bind())
    op.create_table('ip_allocations',
    sa.Column('subnet_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('network_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('port_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.PrimaryKeyConstraint('subnet_id', 'address', name=op.f('pk_ip_allocations')),
    **table_options,
    )
    op.create_index(op.f('ix_ip_allocations_network_id'), 'ip_allocations', ['network_id'], unique=False)
    op.create_index(op.f('ix_ip_allocations_port_id'), 'ip_allocations', ['port_id'], unique=False)
    op.create_table('networks',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('mtu', sa.Integer(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_networks')),
    **table_options,
    )
    op.create_index(op.f('ix_networks_project_id'), 'networks', ['project_id'], unique=False)
    op.create_table('ports',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('network_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('mac_address', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('device_owner', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('binding_host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('nova_created', sa.Boolean(), nullable=False),
    sa.Column('port_security_enabled', sa.Boolean(), nullable=False),
    sa.Column('security_group_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ports')),
    sa.UniqueConstraint('mac_address', name=op.f('uq_ports_mac_address')),
    **table_options,
    )
    op.create_index(op.f('ix_ports_device_id'), 'ports', ['device_id'], unique=False)
    op.create_index(op.f('ix_ports_network_id'), 'ports', ['network_id'], unique=False)
    op.create_index(op.f('ix_ports_project_id'), 'ports', ['project_id'], unique=False)
    op.create_table('security_group_rules',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('security_group_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('ethertype', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('protocol', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('port_range_min', sa.Integer(), nullable=True),
    sa.Column('port_range_max', sa.Integer(), nullable=True),
    sa.Column('remote_ip_prefix', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('remote_group_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_group_rules')),
    **table_options,
    )
    op.create_index(op.f('ix_security_group_rules_security_group_id'), 'security_group_rules', ['security_group_id'], unique=False)
    op.create_table('security_groups',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_groups')),
    **table_options,
    )
    op.create_index(op.f('ix_security_groups_project_id'), 'security_groups', ['project_id'], unique=False)
    op.create_table('subnets',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('network_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('cidr', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('gateway_ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('ip_version', sa.Integer(), nullable=False),
    sa.Column('enable_dhcp', sa.Boolean(), nullable=False),
    sa.Column('allocation_pools', sa.JSON(), nullable=False),
    sa.Column('dns_nameservers', sa.JSON(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subnets')),
    **table_options,
    )
    op.create_index(op.f('ix_subnets_network_id'), 'subnets', ['network_id'], unique=False)
    

def downgrade() -> None:
    op.drop_index(op.f('ix_subnets_network_id'), table_name='subnets')
    op.drop_table('subnets')
    op.drop_index(op.f('ix_security_groups_project_id'), table_name='security_groups')
    op.drop_table('security_groups')
    op.drop_index(op.f('ix_security_group_rules_security_group_id'), table_name='security_group_rules')
    op.drop_table('security_group_rules')
    op.drop_index(op.f('ix_ports_project_id'), table_name='ports')
    op.drop_index(op.f('ix_ports_network_id'), table_name='ports')
    op.drop_index(op.f('ix_ports_device_id'), table_name='ports')
    op.drop_table('ports')
    op.drop_index(op.f('ix_networks_project_id'), table_name='networks')
    op.drop_table('networks')
    op.drop_index(op.f('ix_ip_allocations_port_id'), table_name='ip_allocations')
    op.drop_index(op.f('ix_ip_allocations_network_id'), table_name='ip_allocations')
    op.drop_table('ip_allocations')
    