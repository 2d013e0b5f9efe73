"""one-shot device commands

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 15:50:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_command',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('args', sqlmodel.sql.sqltypes.AutoString(length=16384), nullable=False),
    sa.Column('expires', sa.Float(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=16384), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device_command', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_command_device_id'), ['device_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_command', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_command_device_id'))

    op.drop_table('device_command')
