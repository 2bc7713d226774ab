"""Bars per timeframe (migration 0017): ``market_data.ohlcv`` is a view over one table per
timeframe, a read of one timeframe plans only its table, and rows written into the view land in
their timeframe's table; in both modes."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from prism.data.store import upsert_bars
from prism.db.bars import CHUNK_INTERVALS, bars_table
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
