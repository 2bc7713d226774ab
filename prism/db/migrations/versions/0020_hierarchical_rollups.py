"""Hierarchical rollups: the daily rollup is computed from the hourly one (1m -> 1h -> 1d), not
from the 1m bars again.

- TimescaleDB: ``market_data.ohlcv_1d`` becomes a continuous aggregate on the continuous
  aggregate ``market_data.ohlcv_1h`` (real-time, like the hourly one: each layer answers for
  the buckets it has not materialized from the layer below, down to the 1m bars). Its refresh
  reads 24 hourly rows per symbol and day instead of 1,440 minute bars. Every daily bucket the
  old aggregate held is carried into the new one's materialization as it was, including those
  that outlived the 1m and 1h retention (recomputing them would lose them). They read through the
  view once its refresh job has run (its watermark then passes them), which TimescaleDB starts
  as soon as the job is installed. Its compression, retention and refresh jobs are reinstalled
  from the settings (the daily refresh looks back no further than the 1h retention); the other
  jobs are left alone.
- Plain PostgreSQL: the rollup tables stay as they are; :func:`prism.db.rollups.refresh_rollups`
  now updates the daily table from the hourly one, which holds the same values.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from alembic import context, op
from sqlalchemy import text

from prism.core.settings import load_settings
from prism.db.rollups import install_timescale_policies

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

DAILY = "market_data.ohlcv_1d"
COLUMNS = "symbol, time, open, high, low, close, volume, bars"

FROM_HOURLY = """
CREATE MATERIALIZED VIEW market_data.ohlcv_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 day', time) AS time,
       first(open, time) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, time) AS close,
       sum(volume) AS volume,
       CAST(sum(bars) AS bigint) AS bars
FROM market_data.ohlcv_1h
GROUP BY symbol, time_bucket(INTERVAL '1 day', time)
WITH NO DATA
"""

FROM_MINUTES = """
CREATE MATERIALIZED VIEW market_data.ohlcv_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 day', time) AS time,
       first(open, time) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, time) AS close,
       sum(volume) AS volume,
       count(*) AS bars
FROM market_data.bars_1m
WHERE timeframe = '1m'
GROUP BY symbol, time_bucket(INTERVAL '1 day', time)
WITH NO DATA
"""

MATERIALIZATION = """
SELECT quote_ident(materialization_hypertable_schema) || '.'
       || quote_ident(materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates
WHERE view_schema = 'market_data' AND view_name = 'ohlcv_1d'
"""


def _timescale() -> bool:
    mode = (
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )
    return mode == "timescaledb"


def _rebuild_daily(definition: str) -> None:
    """Replace the daily aggregate by ``definition``, carrying every bucket it holds into the new
    one's materialization, and reinstall the jobs (refreshing the daily one at once)."""
    bind = op.get_bind()
    op.execute(f"CREATE TEMPORARY TABLE carried_1d ON COMMIT DROP AS SELECT {COLUMNS} FROM {DAILY}")
    op.execute(f"DROP MATERIALIZED VIEW {DAILY}")
    op.execute(definition)
    table = bind.execute(text(MATERIALIZATION)).scalar_one()
    op.execute(f"INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM carried_1d")
    settings = context.config.attributes.get("settings") or load_settings()
    install_timescale_policies(bind, settings, only=DAILY)


def upgrade() -> None:
    if _timescale():
        _rebuild_daily(FROM_HOURLY)


def downgrade() -> None:
    if _timescale():
        _rebuild_daily(FROM_MINUTES)
