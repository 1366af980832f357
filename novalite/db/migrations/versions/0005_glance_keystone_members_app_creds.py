"""image members, application credentials, EC2 credentials

Revision ID: 0005
Revises: 0004

Glance's image members (sharing), Keystone's application credentials and the
EC2 credentials of ``/v3/users/{id}/credentials/OS-EC2``; tokens remember the
application credential they were issued for.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, LONG_TEXT, mysql_table_options

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table_options = mysql_table_options(op.get_bind())
    op.create_table('image_members',
    sa.Column('image_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('member_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.Column('updated_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('image_id', 'member_id', name=op.f('pk_image_members')),
    **table_options,
    )
    op.create_index(op.f('ix_image_members_member_id'), 'image_members', ['member_id'],
                    unique=False)
    op.create_table('application_credentials',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('description', LONG_TEXT, nullable=True),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('unrestricted', sa.Boolean(), nullable=False),
    sa.Column('expires_at', DATETIME, nullable=True),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_credentials')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_application_credentials_user_id_name')),
    **table_options,
    )
    op.create_index(op.f('ix_application_credentials_user_id'), 'application_credentials',
                    ['user_id'], unique=False)
    op.create_table('credentials',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('blob', sa.JSON(), nullable=False),
    sa.Column('created_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credentials')),
    **table_options,
    )
    op.create_index(op.f('ix_credentials_user_id'), 'credentials', ['user_id'], unique=False)
    op.add_column('tokens', sa.Column('app_cred_id', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
    op.create_index(op.f('ix_tokens_app_cred_id'), 'tokens', ['app_cred_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_tokens_app_cred_id'), table_name='tokens')
    with op.batch_alter_table('tokens') as batch:
        batch.drop_column('app_cred_id')
    op.drop_index(op.f('ix_credentials_user_id'), table_name='credentials')
    op.drop_table('credentials')
    op.drop_index(op.f('ix_application_credentials_user_id'),
                  table_name='application_credentials')
    op.drop_table('application_credentials')
    op.drop_index(op.f('ix_image_members_member_id'), table_name='image_members')
    op.drop_table('image_members')
