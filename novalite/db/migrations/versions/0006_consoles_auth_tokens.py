"""console auth tokens (nova-consoleauth)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_auth_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('console_type', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('internal_access_path', sqlmodel.sql.sqltypes.AutoString(length=255),
              nullable=True),
    sa.Column('access_url_base', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('instance_uuid', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('compute_host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('expires', sa.Integer(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_auth_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_auth_tokens_token_hash')),
    **mysql_table_options(op.get_bind()),
    )
    op.create_index(op.f('ix_console_auth_tokens_instance_uuid'), 'console_auth_tokens',
                    ['instance_uuid'], unique=False)
    op.create_index(op.f('ix_console_auth_tokens_expires'), 'console_auth_tokens',
                    ['expires'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_console_auth_tokens_expires'), table_name='console_auth_tokens')
    op.drop_index(op.f('ix_console_auth_tokens_instance_uuid'),
                  table_name='console_auth_tokens')
    op.drop_table('console_auth_tokens')
