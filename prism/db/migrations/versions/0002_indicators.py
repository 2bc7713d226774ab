"""Indicator values per bar: market_data.indicators (a hypertable on TimescaleDB).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE market_data.indicators (
            time        timestamptz NOT NULL,
            symbol      text NOT NULL,
            timeframe   text NOT NULL,
            indicator   text NOT NULL,
            value       double precision NOT NULL,
            computed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (symbol, timeframe, indicator, time)
        )
        """
    )
    mode = (
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )
    if mode == "timescaledb":
        op.execute(
            "SELECT create_hypertable('market_data.indicators', by_range('time'), "
            "migrate_data => true)"
        )


def downgrade() -> None:
    op.execute("DROP TABLE market_data.indicators")
