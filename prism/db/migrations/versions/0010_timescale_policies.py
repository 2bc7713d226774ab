"""TimescaleDB's jobs installed at upgrade, and retention that records how far it deleted.

- The retention job of ``market_data.ohlcv`` (``market_data.delete_old_bars``, one job per
  timeframe) now records its cutoff in ``config.database_info`` (``retention_cutoff_<tf>``, only
  ever moving forward), as :func:`prism.db.rollups.apply_retention` does, so that no refresh of
  the 1h/1d rollups reaches behind the 1m cutoff (refreshing a continuous aggregate over a range
  whose raw bars were deleted deletes its buckets).
- On TimescaleDB the default compression, retention and refresh jobs are installed from the
  settings (``PRISM_COMPRESS_*``, ``PRISM_RETENTION_*``) by the upgrade itself, not only by a
  later ``prism db retention``; the refresh jobs look back no further than the 1m retention.

- ``market_data.ohlcv`` and ``market_data.indicators`` get 30-day chunks instead of 7-day ones
  (new chunks only): 20 years of daily bars are about 250 chunks instead of 1,044, which
  planning and statements that lock every chunk feel, while a chunk of 1m bars of 50 symbols
  stays near two million rows.

Plain PostgreSQL has no jobs: its retention runs in the runner's ``maintenance`` flow.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import context, op
from sqlalchemy import text

from prism.core.settings import load_settings
from prism.db.rollups import install_timescale_policies

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHUNKED = ("market_data.ohlcv", "market_data.indicators")
CHUNK_INTERVAL = "30 days"

RETENTION_JOB = """
CREATE OR REPLACE PROCEDURE market_data.delete_old_bars(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - CAST(config ->> 'keep' AS interval);
BEGIN
    INSERT INTO config.database_info AS info (key, value)
    VALUES ('retention_cutoff_' || (config ->> 'timeframe'), CAST(cutoff AS text))
    ON CONFLICT (key) DO UPDATE SET value = CASE
        WHEN CAST(EXCLUDED.value AS timestamptz) > CAST(info.value AS timestamptz)
        THEN EXCLUDED.value ELSE info.value END;
    DELETE FROM market_data.ohlcv
    WHERE timeframe = config ->> 'timeframe' AND time < cutoff;
END
$$;
"""

OLD_RETENTION_JOB = """
CREATE OR REPLACE PROCEDURE market_data.delete_old_bars(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM market_data.ohlcv
    WHERE timeframe = config ->> 'timeframe'
      AND time < now() - CAST(config ->> 'keep' AS interval);
END
$$;
"""


def _mode() -> str:
    return str(
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )


def upgrade() -> None:
    if _mode() != "timescaledb":
        return
    op.execute(RETENTION_JOB)
    for table in CHUNKED:
        op.execute(f"SELECT set_chunk_time_interval('{table}', INTERVAL '{CHUNK_INTERVAL}')")
    settings = context.config.attributes.get("settings") or load_settings()
    install_timescale_policies(op.get_bind(), settings)


def downgrade() -> None:
    if _mode() == "timescaledb":
        op.execute(OLD_RETENTION_JOB)
        for table in CHUNKED:
            op.execute(f"SELECT set_chunk_time_interval('{table}', INTERVAL '7 days')")
