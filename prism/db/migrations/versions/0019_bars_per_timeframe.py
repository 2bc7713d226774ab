"""Bars per timeframe: one table (on TimescaleDB one hypertable) per timeframe, each with a
chunk interval fitting its timeframe, behind the view ``market_data.ohlcv`` (see
:mod:`prism.db.bars`).

- The old hypertable ``market_data.ohlcv`` is renamed ``market_data.bars_1m`` and keeps its 1m
  bars, chunks, compression and the 1h/1d continuous aggregates built on it (they follow the
  table, not its name, so no materialized bucket is lost, not even those that outlived 1m
  retention). Its 5m, 1h and 1d bars move to ``bars_5m``, ``bars_1h`` and ``bars_1d``.
- ``market_data.ohlcv`` becomes a ``UNION ALL`` view with a constant ``timeframe`` per branch;
  an ``INSTEAD OF`` trigger routes rows written into it to their table.
- TimescaleDB's retention job deletes from the timeframe's table, compression is installed per
  table (``install_timescale_policies``), the runner's login may insert and update bars in
  every table, as it could in ``market_data.ohlcv``, and every table notifies the API's stream of
  recent bars (the trigger of 0017, which the renamed 1m table keeps).

Plain PostgreSQL gets the same tables and view, without hypertables or jobs.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from alembic import context, op
from sqlalchemy import text

from prism.core.settings import load_settings
from prism.db.bars import CHUNK_INTERVALS
from prism.db.rollups import install_timescale_policies

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

COLUMNS = (
    "time",
    "symbol",
    "timeframe",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "source",
    "ingested_at",
    "review",
)
MOVED = ("5m", "1h", "1d")
RUNNER = "prism_runner"

ROUTE = """
CREATE FUNCTION market_data.route_bar() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format('DELETE FROM market_data.%I WHERE symbol = $1 AND time = $2',
                       'bars_' || OLD.timeframe) USING OLD.symbol, OLD.time;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    IF NEW.timeframe NOT IN ('1m', '5m', '1h', '1d') THEN
        RAISE EXCEPTION 'unknown timeframe %: expected 1m, 5m, 1h or 1d', NEW.timeframe
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.ingested_at := coalesce(NEW.ingested_at, now());
    EXECUTE format('INSERT INTO market_data.%I SELECT ($1).*', 'bars_' || NEW.timeframe)
        USING NEW;
    RETURN NEW;
END
$$;
CREATE TRIGGER route_bar INSTEAD OF INSERT OR UPDATE OR DELETE ON market_data.ohlcv
FOR EACH ROW EXECUTE FUNCTION market_data.route_bar();
"""

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
    EXECUTE format('DELETE FROM market_data.%I WHERE time < $1',
                   'bars_' || (config ->> 'timeframe')) USING cutoff;
END
$$;
"""

OLD_RETENTION_JOB = """
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


def _timescale() -> bool:
    mode = (
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )
    return mode == "timescaledb"


def _runner_exists() -> bool:
    return bool(
        op.get_bind()
        .execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": RUNNER})
        .scalar()
    )


def _view() -> str:
    branches = []
    for timeframe in CHUNK_INTERVALS:
        columns = [c if c != "timeframe" else f"text '{timeframe}' AS timeframe" for c in COLUMNS]
        branches.append(f"SELECT {', '.join(columns)} FROM market_data.bars_{timeframe}")
    return "CREATE VIEW market_data.ohlcv AS\n" + "\nUNION ALL\n".join(branches)


def upgrade() -> None:
    timescale = _timescale()
    op.execute("ALTER TABLE market_data.ohlcv RENAME TO bars_1m")
    for timeframe in MOVED:
        table = f"market_data.bars_{timeframe}"
        op.execute(
            f"CREATE TABLE {table} (LIKE market_data.bars_1m INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        if timescale:
            op.execute(
                f"SELECT create_hypertable('{table}', by_range('time', "
                f"INTERVAL '{CHUNK_INTERVALS[timeframe]}'))"
            )
        op.execute(
            f"INSERT INTO {table} SELECT * FROM market_data.bars_1m WHERE timeframe = '{timeframe}'"
        )
    op.execute("DELETE FROM market_data.bars_1m WHERE timeframe <> '1m'")
    for timeframe in CHUNK_INTERVALS:
        op.execute(
            f"ALTER TABLE market_data.bars_{timeframe} ADD CONSTRAINT bars_{timeframe}_timeframe "
            f"CHECK (timeframe = '{timeframe}')"
        )
        if timescale:
            op.execute(
                f"SELECT set_chunk_time_interval('market_data.bars_{timeframe}', "
                f"INTERVAL '{CHUNK_INTERVALS[timeframe]}')"
            )
    op.execute(_view())
    op.execute(ROUTE)
    if _runner_exists():
        for timeframe in MOVED:
            op.execute(f"GRANT INSERT, UPDATE ON market_data.bars_{timeframe} TO {RUNNER}")
    for timeframe in MOVED:
        op.execute(
            f"CREATE TRIGGER notify_api AFTER INSERT ON market_data.bars_{timeframe} "
            "FOR EACH ROW WHEN (NEW.time > now() - interval '2 days') "
            "EXECUTE FUNCTION trading.notify_api('bars')"
        )
    if timescale:
        op.execute(RETENTION_JOB)
        settings = context.config.attributes.get("settings") or load_settings()
        install_timescale_policies(op.get_bind(), settings)


def downgrade() -> None:
    timescale = _timescale()
    op.execute("DROP VIEW market_data.ohlcv")
    op.execute("DROP FUNCTION market_data.route_bar()")
    op.execute("ALTER TABLE market_data.bars_1m DROP CONSTRAINT bars_1m_timeframe")
    for timeframe in MOVED:
        op.execute(f"INSERT INTO market_data.bars_1m SELECT * FROM market_data.bars_{timeframe}")
        op.execute(f"DROP TABLE market_data.bars_{timeframe}")
    op.execute("ALTER TABLE market_data.bars_1m RENAME TO ohlcv")
    if timescale:
        op.execute(OLD_RETENTION_JOB)
