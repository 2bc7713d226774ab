"""The 1h/1d rollups outlive 1m retention: refreshing them after retention dropped the raw bars
(the maintenance flow, ``prism db refresh``) must keep the old buckets and their values.

On TimescaleDB a continuous aggregate refreshed over a range whose raw rows are gone deletes
those buckets; on plain PostgreSQL a whole-range upsert shrinks the bucket the cutoff falls in.
Both ran before retention cutoffs were recorded and honoured (issue 14). Runs in both modes:
on TimescaleDB retention is the installed job itself, run through ``run_job``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.cli.app import app
from prism.core.settings import Settings
from prism.data.store import ingest
from prism.db.migrate import database_mode
from prism.db.rollups import apply_retention, refresh_rollups, retention_cutoff
from tests.integration.db.test_platform_schema import FrameSource, minute_bars

COLUMNS = ["symbol", "time", "open", "high", "low", "close", "volume", "bars"]


def rollup(engine: Engine, view: str) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            text(f"SELECT {', '.join(COLUMNS)} FROM market_data.{view} ORDER BY symbol, time"),
            conn,
        )
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def run_retention(engine: Engine, settings: Settings) -> None:
    """Retention as production runs it: TimescaleDB's installed 1m job, or the DELETE of
    the maintenance flow on plain PostgreSQL."""
    if database_mode(engine) != "timescaledb":
        apply_retention(engine, settings)
        return
    with engine.connect() as conn:
        job = conn.execute(
            text(
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'delete_old_bars' AND config ->> 'timeframe' = '1m'"
            )
        ).scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CALL run_job({job})"))


def test_rollups_keep_their_buckets_after_retention_dropped_the_minute_bars(engine, settings):
    # Two months of 1m bars, around the clock, straddling the default 6-month 1m retention.
    now = pd.Timestamp.now(tz="UTC").floor("min")
    start = (now - pd.DateOffset(months=7)).floor("D")
    bars = minute_bars(start, days=61, seed=11)
    ingest(engine, FrameSource(bars))
    hourly, daily = rollup(engine, "ohlcv_1h"), rollup(engine, "ohlcv_1d")
    assert len(daily) == 2 * 61

    run_retention(engine, settings)

    cutoff = now - pd.DateOffset(months=6)
    with engine.connect() as conn:
        oldest = conn.execute(
            text("SELECT min(time) FROM market_data.ohlcv WHERE timeframe = '1m'")
        ).scalar_one()
        recorded = retention_cutoff(conn)
    assert pd.Timestamp(oldest) >= cutoff - pd.Timedelta(minutes=5)
    assert (bars["time"] < cutoff - pd.Timedelta(minutes=5)).sum() > 50_000
    assert recorded is not None and abs(pd.Timestamp(recorded) - cutoff) < pd.Timedelta(hours=1)

    # The maintenance flow refreshes the whole range (then applies retention again), and so
    # does `prism db refresh`.
    refresh_rollups(engine)
    apply_retention(engine, settings)
    result = CliRunner().invoke(app, ["db", "refresh"])
    assert result.exit_code == 0, result.output

    for view, before in (("ohlcv_1h", hourly), ("ohlcv_1d", daily)):
        after = rollup(engine, view)
        old = before[before["time"] < cutoff - pd.Timedelta(days=1)]
        assert len(old) > 0
        kept = after.merge(old[["symbol", "time"]], on=["symbol", "time"])
        assert len(kept) == len(old), f"{view}: {len(old) - len(kept)} old buckets lost"
        assert (after["time"].to_numpy() == before["time"].to_numpy()).all(), view
        for column in ("open", "high", "low", "close", "volume", "bars"):
            np.testing.assert_allclose(after[column], before[column], rtol=1e-12, err_msg=view)


def test_an_ingest_behind_the_retention_cutoff_leaves_the_old_buckets_whole(engine, settings):
    now = pd.Timestamp.now(tz="UTC").floor("min")
    start = (now - pd.DateOffset(months=7)).floor("D")
    bars = minute_bars(start, days=3, seed=12)
    ingest(engine, FrameSource(bars))
    daily = rollup(engine, "ohlcv_1d")
    apply_retention(engine, settings)

    # One late bar arrives for a day whose other 1m bars retention already deleted.
    late = bars.iloc[[10]].assign(close=lambda f: f["close"] + 0.5, high=lambda f: f["high"] + 0.5)
    ingest(engine, FrameSource(late))

    after = rollup(engine, "ohlcv_1d")
    pd.testing.assert_frame_equal(after, daily)
