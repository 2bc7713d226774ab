"""A deployment names the broker it trades through (``paper``, ``alpaca`` or
``ccxt:<exchange>``) and, optionally, the account there; existing deployments stay on paper.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE config.strategies "
        "ADD COLUMN broker text NOT NULL DEFAULT 'paper' "
        "CONSTRAINT strategies_broker_check CHECK (broker ~ '^(paper|alpaca|ccxt:[a-z0-9_]+)$'), "
        "ADD COLUMN broker_account text"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE config.strategies DROP COLUMN broker_account, DROP COLUMN broker")
