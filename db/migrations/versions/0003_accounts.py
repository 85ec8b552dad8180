"""accounts, sign-in sessions and team settings of a team server

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'

ROLE = sa.Enum('admin', 'reviewer', 'viewer', name='account_role', native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        'accounts',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(length=120), nullable=False, unique=True),
        sa.Column('email', sa.String(length=320), nullable=True, unique=True),
        sa.Column('role', ROLE, nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('disabled', sa.Boolean(), nullable=False),
    )
    op.create_table(
        'sign_in_sessions',
        sa.Column('token_hash', sa.String(length=64), primary_key=True),
        sa.Column('account_id', sa.Integer(), sa.ForeignKey('accounts.id'), nullable=False, index=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False, index=True),
    )
    op.create_table(
        'team_settings',
        sa.Column('key', sa.String(length=64), primary_key=True),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=120), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('team_settings')
    op.drop_table('sign_in_sessions')
    op.drop_table('accounts')
