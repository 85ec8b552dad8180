"""background jobs: rounds and prediction refreshes the app shows, with the reason when one fails

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        'jobs',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('kind', _enum('job_kind', 'round', 'refresh'), nullable=False),
        sa.Column('status', _enum('job_status', 'running', 'done', 'failed'), nullable=False, index=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('progress_text', sa.Text(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('log_path', sa.Text(), nullable=False),
        sa.Column('round_id', sa.Integer(), sa.ForeignKey('rounds.id'), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('dismissed_at', sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('jobs')
