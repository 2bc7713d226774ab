"""TimescaleDB's design on the real extension (issue 14): the newest-bar lookup on a 20-year
daily series, real-time rows in the rollups, and backfills into compressed chunks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from prism.data.store import _NEWEST, bars_source, ingest, newest_time, read_bars, upsert_bars
from prism.db.rollups import refresh_rollups
from tests.integration.db.test_platform_schema import (
    FrameSource,
    minute_bars,
    resampled,
    stored_rollup,
)

pytestmark = pytest.mark.timescaledb


def daily_bars(symbol: str, end: pd.Timestamp, years: int, seed: int) -> pd.DataFrame:
    """Random-walk business-day bars of ``symbol`` ending at ``end``, priced to the cent."""
    rng = np.random.default_rng(seed)
    times = pd.bdate_range(end=end, periods=years * 252, tz="UTC")
    close = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(times))))).round(2)
    return pd.DataFrame(
        {
            "time": times,
            "symbol": symbol,
            "timeframe": "1d",
            "open": close,
            "high": (close * 1.01).round(2),
            "low": (close * 0.99).round(2),
            "close": close,
            "volume": 1000.0,
            "source": "synthetic",
        }
    )


def planned_chunks(engine: Engine, params: dict[str, object]) -> tuple[set[str], float]:
    """Return the chunks the newest-bar query's plan reads and its planning time in ms."""
    query = _NEWEST.format(table=bars_source(str(params["tf"])))
    with engine.connect() as conn:
        plan = conn.execute(text(f"EXPLAIN (SUMMARY) {query}"), params).scalars().all()
    chunks = {word for line in plan for word in line.split() if "_hyper_" in word}
    planning = next(float(line.split()[2]) for line in plan if line.startswith("Planning Time"))
    return {chunk.rsplit(".", 1)[-1] for chunk in chunks}, planning


def test_twenty_years_of_daily_bars_are_a_few_chunks_and_the_newest_plans_in_milliseconds(
    timescale_engine,
):
    yesterday = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=1)
    bars = daily_bars("AAA", yesterday, years=20, seed=3)
    upsert_bars(timescale_engine, bars)
    upsert_bars(timescale_engine, minute_bars(pd.Timestamp("2024-01-02", tz="UTC"), 2, seed=5))
    with timescale_engine.connect() as conn:
        daily_chunks = set(
            conn.execute(
                text(
                    "SELECT chunk_name FROM timescaledb_information.chunks "
                    "WHERE hypertable_schema = 'market_data' AND hypertable_name = 'bars_1d_store'"
                )
            ).scalars()
        )

    newest = newest_time(timescale_engine, ["AAA"], "1d")
    whole_series = {"s": ["AAA"], "tf": "1d", "upto": None, "since": pd.Timestamp(0, tz="UTC")}
    planned, planning_ms = planned_chunks(timescale_engine, whole_series)
    planned, planning_ms = planned_chunks(timescale_engine, whole_series)

    assert newest == bars["time"].max()
    assert 2 <= len(daily_chunks) <= 4
    assert planned and planned <= daily_chunks, "only the daily table's chunks are planned"
    assert planning_ms < 20


def test_the_newest_bar_before_a_cutoff_far_back_falls_back_to_the_whole_series(
    timescale_engine,
):
    bars = daily_bars("AAA", pd.Timestamp("2024-06-28", tz="UTC"), years=3, seed=4)
    upsert_bars(timescale_engine, bars)
    upto = pd.Timestamp("2023-01-15", tz="UTC")

    assert (
        newest_time(timescale_engine, ["AAA"], "1d", upto)
        == bars.loc[bars["time"] <= upto, "time"].max()
    )
    assert newest_time(timescale_engine, ["ZZZ"], "1d") is None


def test_a_bar_stored_after_the_last_refresh_shows_in_the_hourly_rollup(timescale_engine):
    start = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=6)
    bars = minute_bars(start, days=1, seed=5)
    bars = bars[bars["time"] < start + pd.Timedelta(hours=4)]
    refreshed = bars[bars["time"] < start + pd.Timedelta(hours=3)]
    upsert_bars(timescale_engine, refreshed)
    refresh_rollups(timescale_engine)
    before = stored_rollup(timescale_engine, "ohlcv_1h")
    upsert_bars(timescale_engine, bars)

    hourly = stored_rollup(timescale_engine, "ohlcv_1h")
    expected = resampled(bars, "1h")

    assert before["time"].max() == start + pd.Timedelta(hours=2)
    assert hourly["time"].max() == start + pd.Timedelta(hours=3)
    assert hourly[["symbol", "time"]].equals(expected[["symbol", "time"]])
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(hourly[column], expected[column], rtol=1e-12)


def compressed_chunks(engine: Engine) -> list[bool]:
    """Return whether each chunk of the 1m bars' hypertable is compressed."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT is_compressed FROM timescaledb_information.chunks "
                    "WHERE hypertable_schema = 'market_data' AND hypertable_name = 'bars_1m_store'"
                )
            ).scalars()
        )


def test_a_backfill_into_compressed_chunks_stores_corrected_older_and_newer_bars(
    timescale_engine,
):
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=10)
    bars = minute_bars(start, days=1, seed=6)
    stored, older = bars[bars["time"] >= start + pd.Timedelta(hours=6)], bars
    older = older[older["time"] < start + pd.Timedelta(hours=6)]
    stored, newer = stored[stored["time"] < start + pd.Timedelta(hours=20)], stored
    newer = newer[newer["time"] >= start + pd.Timedelta(hours=20)]
    ingest(timescale_engine, FrameSource(stored))
    with timescale_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text("SELECT compress_chunk(c) FROM show_chunks('market_data.bars_1m_store') c")
        )
    assert compressed_chunks(timescale_engine) and all(compressed_chunks(timescale_engine))
    corrected = stored.sample(n=200, random_state=1).copy()
    corrected["high"] = corrected["high"] + 0.01
    corrected["close"] = corrected["high"]

    report = ingest(timescale_engine, FrameSource(pd.concat([older, corrected, newer])))

    expected = (
        pd.concat([older, stored.drop(corrected.index), corrected, newer])
        .sort_values(["symbol", "time"])
        .reset_index(drop=True)
    )
    got = read_bars(timescale_engine, ["AAA", "BBB"], timeframe="1m").reset_index(drop=True)
    assert (report.inserted, report.updated) == (len(older) + len(newer), len(corrected))
    assert got[["symbol", "time"]].equals(expected[["symbol", "time"]])
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-12)
    assert compressed_chunks(timescale_engine) and all(compressed_chunks(timescale_engine))
    hourly = stored_rollup(timescale_engine, "ohlcv_1h")
    np.testing.assert_allclose(hourly["close"], resampled(expected, "1h")["close"], rtol=1e-12)
