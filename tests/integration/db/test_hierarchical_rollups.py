"""Hierarchical rollups (migration 0020): the daily rollup is computed from the hourly one, holds
the values pandas computes from the 1m bars, shows a bar stored after the last refresh (real-time,
on TimescaleDB through both layers), and a refresh never reaches behind what the hourly rollup
keeps. In both modes, but for the TimescaleDB-only migration and hourly-retention cases."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from alembic import command
from psycopg.errors import LockNotAvailable
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from prism.data.store import ingest, upsert_bars
from prism.db.migrate import _alembic_config, database_mode, head_revision, upgrade
from prism.db.rollups import (
    REFRESH_JOB,
    apply_retention,
    install_timescale_policies,
    refresh_rollups,
)
from tests.conftest import _pause_jobs
from tests.integration.db.test_platform_schema import FrameSource, minute_bars
from tests.integration.db.test_rollup_retention import rollup

VALUES = ["open", "high", "low", "close", "volume", "bars"]


def from_minutes(bars: pd.DataFrame) -> pd.DataFrame:
    """The daily rollup computed by pandas from the 1m bars themselves."""
    daily = (
        bars.set_index("time")
        .groupby("symbol")
        .resample("1D")
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            bars=("close", "size"),
        )
        .reset_index()
    )
    return daily[daily["bars"] > 0].sort_values(["symbol", "time"]).reset_index(drop=True)


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert got[["symbol", "time"]].equals(expected[["symbol", "time"]])
    for column in VALUES:
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-12, err_msg=column)


def test_the_daily_rollup_from_the_hourly_one_equals_the_daily_rollup_of_the_minutes(engine):
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3)
    bars = minute_bars(start, days=2, seed=21)
    ingest(engine, FrameSource(bars))

    assert_same(rollup(engine, "ohlcv_1d"), from_minutes(bars))


@pytest.mark.timescaledb
def test_a_bar_stored_after_the_last_refresh_shows_in_the_daily_rollup(timescale_engine):
    start = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=30)
    bars = minute_bars(start, days=1, seed=22)
    ingest(timescale_engine, FrameSource(bars))
    late = bars.tail(2).assign(time=lambda f: f["time"] + pd.Timedelta(hours=5))

    upsert_bars(timescale_engine, late)

    expected = from_minutes(pd.concat([bars, late], ignore_index=True))
    assert_same(rollup(timescale_engine, "ohlcv_1d"), expected)


def _drop_hourly_before(engine: Engine, before: pd.Timestamp) -> None:
    """Drop the hourly aggregate's chunks older than ``before``, as its retention job does."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text("SELECT drop_chunks('market_data.ohlcv_1h', older_than => :before)"),
            {"before": before.to_pydatetime()},
        )


@pytest.mark.timescaledb
def test_a_refresh_keeps_the_daily_buckets_whose_hourly_ones_retention_dropped(
    timescale_engine, settings
):
    old = minute_bars(pd.Timestamp("2023-01-02", tz="UTC"), days=2, seed=23)
    recent = minute_bars(pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3), 2, seed=24)
    ingest(timescale_engine, FrameSource(pd.concat([old, recent], ignore_index=True)))
    daily = rollup(timescale_engine, "ohlcv_1d")
    apply_retention(timescale_engine, settings)
    _drop_hourly_before(timescale_engine, pd.Timestamp("2025-01-01", tz="UTC"))
    with timescale_engine.connect() as conn:
        hourly_days = conn.execute(
            text("SELECT count(DISTINCT date_trunc('day', time)) FROM market_data.ohlcv_1h")
        ).scalar_one()

    refresh_rollups(timescale_engine)

    assert hourly_days == 2
    assert_same(rollup(timescale_engine, "ohlcv_1d"), daily)
    assert_same(daily, from_minutes(pd.concat([old, recent], ignore_index=True)))


def test_retention_of_the_hourly_rollup_never_shrinks_the_daily_buckets_it_cut_through(
    engine, settings
):
    bars = minute_bars(pd.Timestamp("2020-03-02", tz="UTC"), days=3, seed=27)
    ingest(engine, FrameSource(bars))
    daily = rollup(engine, "ohlcv_1d")
    if database_mode(engine) == "timescaledb":
        # The aggregate's retention drops whole chunks: here every chunk the hourly rollup has.
        apply_retention(engine, settings)
        _drop_hourly_before(engine, pd.Timestamp("2025-01-01", tz="UTC"))
        kept = pd.Timestamp("2100-01-01", tz="UTC")
    else:
        # Plain PostgreSQL trims the hourly table to the 1h retention, cutting through a day.
        kept = pd.Timestamp("2020-03-03 12:00", tz="UTC")
        deleted = apply_retention(
            engine,
            settings.model_copy(update={"retention_1h": "1 year"}),
            now=(kept + pd.DateOffset(years=1)).to_pydatetime(),
        )
        assert deleted["market_data.ohlcv_1h"] == 36 * bars["symbol"].nunique()
    hourly = rollup(engine, "ohlcv_1h")
    assert (hourly["time"] >= kept).all()

    refresh_rollups(engine)

    assert_same(rollup(engine, "ohlcv_1d"), daily)
    assert_same(daily, from_minutes(bars))


@pytest.mark.timescaledb
def test_the_daily_refresh_job_looks_back_no_further_than_the_hourly_retention(
    timescale_engine, settings
):
    short = settings.model_copy(update={"retention_1h": "4 days"})
    with timescale_engine.begin() as conn:
        install_timescale_policies(conn, short)
        offsets = dict(
            conn.execute(
                text(
                    "SELECT CAST(:view AS text), CAST(config ->> 'start_offset' AS interval) "
                    f"FROM timescaledb_information.jobs WHERE job_id = ({REFRESH_JOB})"
                ),
                {"view": view},
            ).one()
            for view in ("market_data.ohlcv_1h", "market_data.ohlcv_1d")
        )
        install_timescale_policies(conn, settings)
    assert offsets == {
        "market_data.ohlcv_1h": pd.Timedelta(days=3),
        "market_data.ohlcv_1d": pd.Timedelta(days=4),
    }


def _run_daily_refresh_job(engine: Engine) -> None:
    """Run the daily aggregate's refresh job now, after the scheduler's own run of it if that
    is in progress (a migration installs the job, and the scheduler may start it at once)."""
    with engine.connect() as conn:
        job = conn.execute(text(REFRESH_JOB), {"view": "market_data.ohlcv_1d"}).scalar_one()
    for attempt in range(60):
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"CALL run_job({job})"))
            return
        except OperationalError as err:
            if not isinstance(err.orig, LockNotAvailable) or attempt == 59:
                raise
            time.sleep(0.5)


@pytest.mark.timescaledb
def test_0020_carries_every_daily_bucket_into_the_aggregate_on_the_hourly_one(timescale_engine):
    config = _alembic_config()
    with timescale_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0019")
    _pause_jobs(timescale_engine)
    today = pd.Timestamp.now(tz="UTC").floor("D")
    old = minute_bars(today - pd.Timedelta(days=60), days=2, seed=25)
    recent = minute_bars(today - pd.Timedelta(days=3), days=2, seed=26)
    # written through the view (the schema is 0019's, older than this code's writer)
    with timescale_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, close, "
                "volume, source) VALUES (:time, :symbol, :timeframe, :open, :high, :low, :close, "
                ":volume, :source)"
            ),
            pd.concat([old, recent], ignore_index=True).to_dict("records"),
        )
    refresh_rollups(timescale_engine)
    daily = rollup(timescale_engine, "ohlcv_1d")
    # The old days' hourly buckets are gone, as after the hourly aggregate's retention.
    with timescale_engine.begin() as conn:
        hourly = conn.execute(
            text(
                "SELECT format('%I.%I', materialization_hypertable_schema, "
                "materialization_hypertable_name) FROM timescaledb_information."
                "continuous_aggregates WHERE view_name = 'ohlcv_1h'"
            )
        ).scalar_one()
        conn.execute(
            text(f"DELETE FROM {hourly} WHERE time < :before"),
            {"before": (today - pd.Timedelta(days=30)).to_pydatetime()},
        )

    assert upgrade(timescale_engine) == head_revision()
    _run_daily_refresh_job(timescale_engine)

    with timescale_engine.connect() as conn:
        source = conn.execute(
            text(
                "SELECT view_definition FROM timescaledb_information.continuous_aggregates "
                "WHERE view_name = 'ohlcv_1d'"
            )
        ).scalar_one()
    assert "ohlcv_1h" in source and "bars_1m" not in source
    assert_same(daily, from_minutes(pd.concat([old, recent], ignore_index=True)))
    assert_same(rollup(timescale_engine, "ohlcv_1d"), daily)
