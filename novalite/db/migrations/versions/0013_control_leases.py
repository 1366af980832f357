"""control leases: one active scheduler among several control processes

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

from novalite.db.types import DATETIME, mysql_table_options

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('control_leases',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('acquired_at', DATETIME, nullable=False),
    sa.Column('expires_at', DATETIME, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_control_leases')),
    **mysql_table_options(op.get_bind()),
    )


def downgrade() -> None:
    op.drop_table('control_leases')
