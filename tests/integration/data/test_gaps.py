"""Gaps against the trading calendar, backfill from the bars' own source, `prism data gaps`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.cli.app import app
from prism.data.bars import normalise
from prism.data.gaps import (
    Gap,
    RangeSource,
    backfill,
    expected_times,
    find_gaps,
    ingest_and_heal,
)
from prism.data.sources import ArchBarSource, Asset
from prism.data.store import ingest, upsert_assets, upsert_bars

UTC = "UTC"
HOLE = ["2018-12-24", "2018-12-26", "2018-12-27"]
"""Three SPX sessions around Christmas 2018 (a market holiday, not a gap, in the middle)."""


def _day(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz=UTC)


def _bars(engine: Engine, symbol: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            text(
                "SELECT time, symbol, timeframe, open, high, low, close, volume, source "
                "FROM market_data.ohlcv WHERE symbol = :s ORDER BY time"
            ),
            conn,
            params={"s": symbol},
        )


def punch(engine: Engine, symbol: str, days: list[str], timeframe: str = "1d") -> None:
    """Delete ``symbol``'s bars at ``days``, as an outage of its feed would leave them."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM market_data.ohlcv WHERE symbol = :s AND timeframe = :tf "
                "AND time = ANY(CAST(:t AS timestamptz[]))"
            ),
            {"s": symbol, "tf": timeframe, "t": [_day(d).to_pydatetime() for d in days]},
        )


@pytest.fixture
def stocked(engine: Engine) -> Engine:
    ingest(engine, ArchBarSource())
    return engine


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_weekends_and_market_holidays_are_not_expected_bars():
    expected = expected_times("XNYS", "1d", _day("2018-12-20"), _day("2019-01-02"))

    assert [str(t.date()) for t in expected] == [
        "2018-12-20",
        "2018-12-21",
        "2018-12-24",
        "2018-12-26",
        "2018-12-27",
        "2018-12-28",
        "2018-12-31",
        "2019-01-02",
    ]


def test_the_bundled_bars_have_no_gaps_against_the_nyse_calendar(stocked):
    assert find_gaps(stocked) == []


def test_a_punched_hole_is_one_range_across_the_christmas_holiday(stocked):
    punch(stocked, "SPX", HOLE)

    gaps = find_gaps(stocked)

    assert gaps == [Gap("SPX", "1d", _day("2018-12-24"), _day("2018-12-27"), 3)]


def test_gaps_json_lists_each_range_with_its_first_and_last_missing_bar(stocked):
    punch(stocked, "SPX", HOLE)
    punch(stocked, "NDX", ["2010-03-10"])

    listed = json.loads(_invoke("data", "gaps", "--json"))
    only_spx = json.loads(_invoke("data", "gaps", "--symbol", "SPX", "--timeframe", "1d", "--json"))

    assert listed == [
        {
            "symbol": "NDX",
            "timeframe": "1d",
            "start": "2010-03-10T00:00:00+00:00",
            "end": "2010-03-10T00:00:00+00:00",
            "missing": 1,
        },
        {
            "symbol": "SPX",
            "timeframe": "1d",
            "start": "2018-12-24T00:00:00+00:00",
            "end": "2018-12-27T00:00:00+00:00",
            "missing": 3,
        },
    ]
    assert only_spx == listed[1:]


def test_backfill_restores_exactly_the_missing_rows_from_the_bundled_source(stocked):
    before = _bars(stocked, "SPX")
    punch(stocked, "SPX", HOLE)

    results = backfill(stocked, find_gaps(stocked))

    assert [(r.source, r.filled, r.unfilled) for r in results] == [("arch", 3, 0)]
    pd.testing.assert_frame_equal(_bars(stocked, "SPX"), before)
    assert find_gaps(stocked) == []


def test_the_backfill_command_reports_what_it_restored(stocked):
    punch(stocked, "SPX", HOLE)

    output = _invoke("data", "backfill", "--symbol", "SPX")

    assert "backfill: 3 bars restored in 1 gap(s); 0 could not be filled" in output


CRYPTO_CSV = "time,open,high,low,close,volume\n" + "".join(
    f"2024-03-01T{hour:02d}:00:00,{100 + hour},{101 + hour},{99 + hour},{100.5 + hour},7\n"
    for hour in range(12)
    if hour != 5
)


def test_a_crypto_hour_missing_is_a_gap_on_the_always_open_calendar(engine, tmp_path: Path):
    path = tmp_path / "btc.csv"
    path.write_text(CRYPTO_CSV)
    _invoke("data", "ingest", "csv", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h")
    with engine.begin() as conn:
        conn.execute(text("UPDATE market_data.assets SET calendar = '24/7'"))

    gaps = json.loads(_invoke("data", "gaps", "--symbol", "BTC/USDT", "--json"))
    output = _invoke("data", "backfill", "--symbol", "BTC/USDT")

    assert gaps == [
        {
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": "2024-03-01T05:00:00+00:00",
            "end": "2024-03-01T05:00:00+00:00",
            "missing": 1,
        }
    ]
    assert "source 'csv' cannot be fetched again" in output
    assert "0 bars restored in 1 gap(s); 1 could not be filled" in output


class HourlyFeed:
    """A fake ccxt feed of 24 hourly candles; ``down`` are hours its first run missed."""

    name = "ccxt:fake"
    timeframe = "1h"

    def __init__(self, down: tuple[int, ...] = ()) -> None:
        self.down = down
        self.fetches = 0

    def assets(self) -> list[Asset]:
        return [Asset("ETH/USDT", "ETH/USDT", asset_class="crypto", calendar="24/7")]

    def fetch(self) -> pd.DataFrame:
        self.fetches += 1
        hours = [h for h in range(24) if h not in self.down]
        return normalise(
            pd.DataFrame(
                {
                    "time": [_day("2024-03-01") + pd.Timedelta(hours=h) for h in hours],
                    "symbol": "ETH/USDT",
                    "timeframe": "1h",
                    "open": 10.0,
                    "high": 11.0,
                    "low": 9.0,
                    "close": 10.5,
                    "volume": 1.0,
                    "source": self.name,
                }
            )
        )


def test_ingesting_a_feed_backfills_the_hour_it_was_down(engine):
    full = HourlyFeed()
    registry = {"ccxt:fake": lambda s, tf, a, b: RangeSource(full, s, tf, a, b)}

    report, healed = ingest_and_heal(engine, HourlyFeed(down=(7, 8)), registry)

    assert report.inserted == 22
    assert [(r.gap.start.hour, r.gap.missing, r.filled) for r in healed] == [(7, 2, 2)]
    assert full.fetches == 1
    assert find_gaps(engine) == []
    assert len(_bars(engine, "ETH/USDT")) == 24


def _reference_gaps(
    symbol: str, timeframe: str, expected: pd.DatetimeIndex, stored: pd.DatetimeIndex
) -> list[Gap]:
    """Expected minus stored, grouped into runs consecutive in ``expected``: the definition of a
    gap, computed the plain way from every timestamp."""
    have = set(stored)
    runs: list[list[pd.Timestamp]] = []
    previous_missing = False
    for moment in expected:
        missing = moment not in have
        if missing and previous_missing:
            runs[-1].append(moment)
        elif missing:
            runs.append([moment])
        previous_missing = missing
    return [Gap(symbol, timeframe, run[0], run[-1], len(run)) for run in runs]


def test_random_holes_in_minute_bars_are_found_as_the_timestamp_by_timestamp_definition(engine):
    rng = np.random.default_rng(11)
    week = {
        "AAA": expected_times("XNYS", "1m", _day("2024-07-01"), _day("2024-07-09")),
        "BTC/USDT": expected_times("24/7", "1m", _day("2024-07-01"), _day("2024-07-03")),
    }
    upsert_assets(engine, [Asset("BTC/USDT", "BTC/USDT", asset_class="crypto", calendar="24/7")])
    stored: dict[str, pd.DatetimeIndex] = {}
    for symbol, grid in week.items():
        keep = rng.random(grid.size) > 0.02
        keep[[0, -1]] = True
        keep[100:160] = False
        stored[symbol] = grid[keep]
    weekend = (week["AAA"] > _day("2024-07-05") + pd.Timedelta(hours=19, minutes=56)) & (
        week["AAA"] < _day("2024-07-08") + pd.Timedelta(hours=13, minutes=33)
    )
    stored["AAA"] = stored["AAA"].difference(week["AAA"][weekend])
    off_calendar = pd.Timestamp("2024-07-06 15:00", tz="UTC")  # a Saturday bar, amid one gap
    stored["AAA"] = stored["AAA"].append(pd.DatetimeIndex([off_calendar])).sort_values()
    upsert_bars(
        engine,
        pd.concat(
            normalise(
                pd.DataFrame(
                    {"time": times, "symbol": symbol, "timeframe": "1m", "open": 10.0}
                    | {"high": 11.0, "low": 9.0, "close": 10.5, "volume": 1.0, "source": "test"}
                )
            )
            for symbol, times in stored.items()
        ),
    )
    window = (_day("2024-07-02") + pd.Timedelta(hours=15), _day("2024-07-08"))

    found = find_gaps(engine, timeframe="1m")
    in_window = find_gaps(engine, ["AAA"], "1m", *(t.to_pydatetime() for t in window))

    assert found == [
        gap
        for symbol, grid in week.items()
        for gap in _reference_gaps(symbol, "1m", grid, stored[symbol])
    ]
    inside = stored["AAA"][(stored["AAA"] >= window[0]) & (stored["AAA"] <= window[1])]
    grid = week["AAA"]
    assert in_window == _reference_gaps(
        "AAA", "1m", grid[(grid >= inside[0]) & (grid <= inside[-1])], inside
    )
    assert sum(g.missing for g in found) > 100
    assert (
        Gap(
            "AAA",
            "1m",
            _day("2024-07-05") + pd.Timedelta(hours=19, minutes=57),
            _day("2024-07-08") + pd.Timedelta(hours=13, minutes=32),
            6,
        )
        in found
    )
