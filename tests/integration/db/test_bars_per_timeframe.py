"""Bars per timeframe (migration 0019): ``market_data.ohlcv`` is a view over one table per
timeframe, a read of one timeframe plans only its table, and rows written into the view land in
their timeframe's table; in both modes."""

from __future__ import annotations

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from prism.data.store import ingest, read_bars, upsert_bars
from prism.db.bars import CHUNK_INTERVALS, bars_storage, bars_table
from prism.db.migrate import _alembic_config, head_revision, upgrade
from tests.conftest import _pause_jobs
from tests.integration.db.test_platform_schema import FrameSource, minute_bars, stored_rollup
from tests.integration.db.test_timescale_design import daily_bars

ROW = (
    "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, close, volume, "
    "source) VALUES ('2024-03-01 10:00+00', 'AAA', :tf, 1, 2, 0.5, 1.5, 10, 'hand')"
)


def test_a_read_of_one_timeframe_plans_only_that_timeframes_table(engine):
    with engine.connect() as conn:
        plan = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN SELECT max(time) FROM market_data.ohlcv "
                    "WHERE symbol = 'AAA' AND timeframe = :tf"
                ),
                {"tf": "1d"},
            ).scalars()
        )
    for other in ("bars_1m", "bars_5m", "bars_1h"):
        assert other not in plan


def test_bars_land_in_their_timeframes_table_and_read_back_through_the_view(engine):
    bars = daily_bars("AAA", pd.Timestamp("2024-06-28", tz="UTC"), years=1, seed=1)
    upsert_bars(engine, bars)
    upsert_bars(engine, bars.assign(close=bars["close"] * 1.001))
    with engine.begin() as conn:
        conn.execute(text(ROW), {"tf": "1h"})
        counts = {
            tf: conn.execute(text(f"SELECT count(*) FROM {bars_table(tf)}")).scalar_one()
            for tf in CHUNK_INTERVALS
        }
        by_view = dict(
            conn.execute(text("SELECT timeframe, count(*) FROM market_data.ohlcv GROUP BY 1")).all()
        )
        conn.execute(text("DELETE FROM market_data.ohlcv WHERE timeframe = '1h'"))
        left = conn.execute(text("SELECT count(*) FROM market_data.bars_1h")).scalar_one()
        close = conn.execute(
            text("SELECT max(close) FROM market_data.ohlcv WHERE timeframe = '1d'")
        ).scalar_one()

    assert counts == {"1m": 0, "5m": 0, "1h": 1, "1d": len(bars)}
    assert by_view == {"1h": 1, "1d": len(bars)}
    assert left == 0
    assert close == pytest.approx(bars["close"].max() * 1.001)


def test_a_bar_of_an_unknown_timeframe_written_into_the_view_is_refused(engine):
    with pytest.raises(DBAPIError, match="unknown timeframe 2h"), engine.begin() as conn:
        conn.execute(text(ROW), {"tf": "2h"})


def test_downgrading_0019_moves_every_bar_back_into_one_table_and_upgrading_splits_them(
    engine,
):
    daily = daily_bars("AAA", pd.Timestamp("2024-06-28", tz="UTC"), years=1, seed=2)
    # recent minutes: the 1m retention job that the upgrade installs may run at once
    minutes = minute_bars(pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3), 1, seed=2)
    ingest(engine, FrameSource(pd.concat([daily, minutes], ignore_index=True)))
    hourly = stored_rollup(engine, "ohlcv_1h")
    before = read_bars(engine, ["AAA", "BBB"], timeframe="1m")

    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0018")
    _pause_jobs(engine)
    with engine.connect() as conn:
        kind = conn.execute(
            text("SELECT relkind FROM pg_class WHERE oid = 'market_data.ohlcv'::regclass")
        ).scalar_one()
        old = dict(
            conn.execute(text("SELECT timeframe, count(*) FROM market_data.ohlcv GROUP BY 1")).all()
        )
    assert upgrade(engine) == head_revision()

    assert kind == "r"
    assert old == {"1d": len(daily), "1m": len(minutes)}
    assert read_bars(engine, ["AAA"], timeframe="1d")["close"].tolist() == pytest.approx(
        daily["close"].tolist()
    )
    assert read_bars(engine, ["AAA", "BBB"], timeframe="1m").equals(before)
    assert stored_rollup(engine, "ohlcv_1h").equals(hourly)


OLD_BARS = """
INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, close, volume, source)
SELECT t, 'AAA', :tf, 100 + i % 7, 101 + i % 7, 99 + i % 7, 100.5 + i % 7, i, 'old'
FROM generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz),
                     CAST(:step AS interval)) WITH ORDINALITY AS g(t, i)
"""
"""Bars written into the table ``market_data.ohlcv`` was before migration 0019."""

ALL_BARS = "SELECT * FROM market_data.ohlcv ORDER BY timeframe, time"


@pytest.mark.timescaledb
def test_0019_splits_bars_stored_in_compressed_chunks(timescale_engine):
    config = _alembic_config()
    with timescale_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0018")
        conn.execute(
            text(OLD_BARS),
            {"tf": "1d", "start": "2004-01-01", "end": "2024-01-01", "step": "1 day"},
        )
        # recent minutes: the 1m retention job that the upgrade installs may run at once
        recent = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=3)
        conn.execute(
            text(OLD_BARS),
            {
                "tf": "1m",
                "start": recent.isoformat(),
                "end": (recent + pd.Timedelta(days=2)).isoformat(),
                "step": "1 minute",
            },
        )
        before = pd.read_sql_query(text(ALL_BARS), conn)
    _pause_jobs(timescale_engine)
    with timescale_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT compress_chunk(c) FROM show_chunks('market_data.ohlcv') c"))

    assert upgrade(timescale_engine) == head_revision()

    with timescale_engine.connect() as conn:
        after = pd.read_sql_query(text(ALL_BARS), conn)
        chunks = conn.execute(text(f"SELECT count(*) FROM show_chunks('{bars_storage('1d')}')"))
    assert after.equals(before)
    assert chunks.scalar_one() <= 4
