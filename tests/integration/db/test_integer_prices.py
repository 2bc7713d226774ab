"""Integer prices (migration 0022): bars are stored as integer units and the fewest decimals per
symbol, and read back as the same float8 prices, bit for bit, through every path that writes
them (COPY of new rows, the staging upsert, the ``market_data.ohlcv`` trigger), compressed or not;
identical rows are left untouched whatever decimals either side was encoded with, and the
rollups hold the values pandas computes from the bars. In both modes, but compression."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars, upsert_bars
from prism.db.bars import LARGEST, bars_storage
from tests.integration.db.test_hierarchical_rollups import from_minutes
from tests.integration.db.test_platform_schema import FrameSource, minute_bars
from tests.integration.db.test_rollup_retention import rollup

PRICES = ["open", "high", "low", "close"]
ODD = {"FINE": 0.123456789, "WHOLE": 4321.0, "HUGE": 98765432109876.5}
"""A price finer than 8 decimals, one without decimals, and one whose units at 8 decimals
would not be exact integers."""


def stored(engine: Engine, timeframe: str) -> pd.DataFrame:
    return read_bars(engine, ["AAA", "BBB"], timeframe=timeframe)


def cent_bars(timeframe: str, start: str, rows: int, seed: int) -> pd.DataFrame:
    """Random bars of AAA and BBB priced to the cent over a wide range (0.01 to 100,000)."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in ("AAA", "BBB"):
        cents = rng.integers(1, 10_000_000, (rows, 4))
        low, high = cents.min(axis=1), cents.max(axis=1)
        frames.append(
            pd.DataFrame(
                {
                    "time": pd.date_range(start, periods=rows, freq=timeframe.replace("m", "min")),
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "open": cents[:, 0] / 100,
                    "high": high / 100,
                    "low": low / 100,
                    "close": cents[:, 1] / 100,
                    "volume": rng.integers(1, 1000, rows).astype(float),
                    "source": "synthetic",
                }
            )
        )
    bars = pd.concat(frames, ignore_index=True)
    bars["low"] = bars[PRICES].min(axis=1)
    bars["high"] = bars[PRICES].max(axis=1)
    bars["time"] = bars["time"].dt.tz_localize("UTC")
    return bars


def odd_bars() -> pd.DataFrame:
    """One daily bar of each :data:`ODD` symbol, all four prices the odd one."""
    return pd.DataFrame(
        [
            {"time": pd.Timestamp("2024-01-02", tz="UTC"), "symbol": s, "timeframe": "1d",
             **dict.fromkeys(PRICES, price), "volume": 1.0, "source": "synthetic"}
            for s, price in ODD.items()
        ]
    )  # fmt: skip


def assert_identical(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same keys and prices equal bit for bit (no tolerance)."""
    expected = expected.sort_values(["symbol", "time"]).reset_index(drop=True)
    got = got.sort_values(["symbol", "time"]).reset_index(drop=True)
    assert got["time"].equals(expected["time"]) and got["symbol"].equals(expected["symbol"])
    for column in PRICES:
        assert np.array_equal(got[column].to_numpy(), expected[column].to_numpy()), column


def test_the_bundled_bars_read_back_bit_identical(engine):
    source = ArchBarSource()
    ingest(engine, source)

    assert_identical(read_bars(engine, ["SPX", "NDX"], timeframe="1d"), source.fetch())


def test_cent_prices_read_back_bit_identical_through_every_write_path(engine):
    bars = cent_bars("1h", "2024-01-01", 400, seed=1)
    first, second = bars[bars["time"] < "2024-01-10"], bars[bars["time"] >= "2024-01-05"]
    upsert_bars(engine, first)  # new rows: COPY
    upsert_bars(engine, second)  # overlap: staging upsert, then COPY of the newer ones
    through_view = cent_bars("1d", "2024-01-01", 20, seed=2)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, "
                "close, volume, source) VALUES (:time, :symbol, :timeframe, :open, :high, :low, "
                ":close, :volume, :source)"
            ),
            through_view.to_dict("records"),
        )
    with engine.connect() as conn:
        decimals = conn.execute(
            text(f"SELECT DISTINCT price_decimals FROM {bars_storage('1h')}")
        ).scalars()
        decimals_set = set(decimals)

    assert_identical(stored(engine, "1h"), bars)
    assert_identical(stored(engine, "1d"), through_view)
    assert decimals_set <= {0, 1, 2} and 2 in decimals_set


def test_odd_prices_keep_8_decimals_and_huge_ones_stay_exact_in_both_encoders(engine):
    upsert_bars(engine, odd_bars())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, "
                "close, volume, source) SELECT time + interval '1 day', symbol, timeframe, open, "
                "high, low, close, volume, source FROM market_data.ohlcv"
            )
        )
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT symbol, close FROM market_data.ohlcv ORDER BY symbol, time")
        ).all()

    expected = {s: round(p, 8) for s, p in ODD.items()}
    assert sorted(rows) == sorted([(s, p) for s, p in expected.items()] * 2)
    assert expected["FINE"] == 0.12345679 and expected["HUGE"] == ODD["HUGE"]


def test_a_price_too_large_for_integer_units_is_quarantined_not_stored(engine):
    bars = odd_bars().iloc[:1].copy()
    bars[PRICES] = LARGEST * 2

    report = ingest(engine, FrameSource(bars))

    assert (report.inserted, report.quarantined) == (0, 1)
    assert report.rejects[0]["rule"] == "price_too_large"


def walk_bars(rows: int, seed: int) -> pd.DataFrame:
    """Hourly random-walk bars of AAA and BBB moving a few cents a bar (none is flagged)."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in ("AAA", "BBB"):
        close = 10_000 + np.cumsum(rng.integers(-5, 6, rows))
        open_ = np.concatenate([[10_000], close[:-1]])
        frames.append(
            pd.DataFrame(
                {
                    "time": pd.date_range("2024-01-01", periods=rows, freq="1h", tz="UTC"),
                    "symbol": symbol,
                    "timeframe": "1h",
                    "open": open_ / 100,
                    "high": (np.maximum(open_, close) + 3) / 100,
                    "low": (np.minimum(open_, close) - 3) / 100,
                    "close": close / 100,
                    "volume": 10.0,
                    "source": "synthetic",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_ingesting_again_leaves_every_row_untouched_whatever_decimals_a_batch_picks(engine):
    bars = walk_bars(300, seed=3)
    bars.loc[bars.index[:3], PRICES] = 100.1234
    ingest(engine, FrameSource(bars))
    with engine.connect() as conn:
        before = pd.read_sql_query(
            text(f"SELECT * FROM {bars_storage('1h')} ORDER BY symbol, time"), conn
        )
    subset = bars.iloc[3:]  # without AAA's 4-decimal bars: AAA is encoded with 2 decimals

    again = ingest(engine, FrameSource(bars))
    partly = ingest(engine, FrameSource(subset))
    with engine.connect() as conn:
        after = pd.read_sql_query(
            text(f"SELECT * FROM {bars_storage('1h')} ORDER BY symbol, time"), conn
        )

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(bars))
    assert (partly.inserted, partly.updated, partly.unchanged) == (0, 0, len(subset))
    assert after.equals(before)
    assert dict(before.groupby("symbol")["price_decimals"].max()) == {"AAA": 4, "BBB": 2}


def test_the_hourly_and_daily_rollups_equal_pandas_on_the_bars(engine):
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3)
    bars = minute_bars(start, days=2, seed=31)
    ingest(engine, FrameSource(bars))
    hourly = (
        bars.set_index("time")
        .groupby("symbol")
        .resample("1h")
        .agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
             close=("close", "last"), volume=("volume", "sum"), bars=("close", "size"))
        .reset_index()
    )  # fmt: skip
    hourly = hourly[hourly["bars"] > 0].reset_index(drop=True)

    for got, expected in ((rollup(engine, "ohlcv_1h"), hourly), (rollup(engine, "ohlcv_1d"),
                          from_minutes(bars))):  # fmt: skip
        assert_identical(got, expected)
        assert got["bars"].tolist() == expected["bars"].tolist()
        np.testing.assert_allclose(got["volume"], expected["volume"], rtol=1e-12)


@pytest.mark.timescaledb
def test_compressed_chunks_read_back_bit_identical_and_a_day_through_the_view_reads_one_chunk(
    timescale_engine,
):
    bars = cent_bars("1m", "2024-03-16", 5000, seed=4)  # across the chunk boundary of 03-18
    upsert_bars(timescale_engine, bars)
    with timescale_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"SELECT compress_chunk(c) FROM show_chunks('{bars_storage('1m')}') c"))
        plan = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN SELECT open, close FROM market_data.bars_1m "
                    "WHERE symbol = 'AAA' AND time >= '2024-03-16' AND time < '2024-03-17'"
                )
            ).scalars()
        )

    assert_identical(read_bars(timescale_engine, ["AAA", "BBB"], timeframe="1m"), bars)
    chunks = set(re.findall(r"(?<!compress)_hyper_\d+_\d+_chunk", plan))
    assert ("ColumnarScan" in plan or "DecompressChunk" in plan) and len(chunks) == 1
