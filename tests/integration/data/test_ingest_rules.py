"""Validation, flagging, idempotency and interruption of ingestion against real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.cli.app import app
from prism.data.bars import normalise
from prism.data.sources import Asset
from prism.data.store import ingest, upsert_bars
from prism.data.validate import RULES
from prism.db.engine import sqlalchemy_url
from tests.benchmarks.synthetic import random_walk_bars

GOOD = {
    "symbol": "X",
    "timeframe": "1d",
    "open": 100.0,
    "high": 101.0,
    "low": 99.0,
    "close": 100.0,
    "volume": 1_000.0,
    "source": "test",
}


class FrameSource:
    """A bar source serving a fixed frame, of symbols that trade every day (the frames are
    consecutive calendar days)."""

    name = "test"

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars

    def assets(self) -> list[Asset]:
        return [
            Asset(s, s, asset_class="unknown", calendar="24/7")
            for s in sorted(set(self.bars["symbol"]))
        ]

    def fetch(self) -> pd.DataFrame:
        return self.bars.copy()


def _bars(*rows: dict, start: str = "2024-01-01") -> pd.DataFrame:
    times = pd.date_range(start, periods=len(rows), freq="D", tz="UTC")
    return normalise(
        pd.DataFrame([{**GOOD, "time": t, **row} for t, row in zip(times, rows, strict=True)])
    )


def _rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def _table(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            text("SELECT * FROM market_data.ohlcv ORDER BY symbol, timeframe, time"), conn
        )


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"close": None}, "missing_value"),
        ({"open": 0.0, "low": 0.0}, "non_positive_price"),
        ({"volume": -1.0}, "negative_volume"),
        ({"high": 99.5}, "high_below_body"),
        ({"low": 100.5}, "low_above_body"),
        ({"timeframe": "2d"}, "unknown_timeframe"),
    ],
)
def test_each_rule_quarantines_the_row_with_its_rule_reason_and_raw_payload(engine, change, rule):
    report = ingest(engine, FrameSource(_bars({}, change, {})))

    assert (report.received, report.inserted, report.quarantined) == (3, 2, 1)
    [(source, symbol, got_rule, reason, raw)] = _rows(
        engine, "SELECT source, symbol, rule, reason, raw FROM market_data.quarantine"
    )
    assert (source, symbol, got_rule, reason) == ("test", "X", rule, RULES[rule][1])
    assert raw["time"].startswith("2024-01-02")
    assert set(raw) == {
        "time",
        "symbol",
        "timeframe",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "source",
    }
    expected = {**GOOD, **change}
    assert {k: raw[k] for k in ("open", "high", "low", "close", "volume")} == {
        k: expected[k] for k in ("open", "high", "low", "close", "volume")
    }


def test_a_bar_from_the_future_is_quarantined(engine):
    tomorrow = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)).normalize()
    bars = _bars({}, start=str((tomorrow - pd.Timedelta(days=1)).date()))
    future = _bars({}, start=str(tomorrow.date()))

    report = ingest(engine, FrameSource(pd.concat([bars, future], ignore_index=True)))

    assert (report.inserted, report.quarantined) == (1, 1)
    assert _rows(engine, "SELECT rule, raw->>'time' FROM market_data.quarantine") == [
        ("future_time", future["time"].iloc[0].isoformat())
    ]


def test_a_twelve_percent_jump_is_stored_flagged_and_counted(engine):
    report = ingest(
        engine,
        FrameSource(
            _bars(
                {}, {"close": 100.5, "high": 112.5}, {"open": 112.0, "high": 113.0, "close": 112.56}
            )
        ),
    )

    assert (report.inserted, report.flagged, report.quarantined) == (3, 1, 0)
    assert _rows(
        engine,
        "SELECT time::date::text, review FROM market_data.ohlcv WHERE review IS NOT NULL",
    ) == [("2024-01-03", "close moved +12.0% from the previous close 100.5")]


def test_a_batch_starting_mid_history_is_compared_with_the_last_stored_close(engine):
    ingest(engine, FrameSource(_bars({}, {})))

    later = _bars({"open": 88.0, "low": 88.0, "close": 88.5}, start="2024-01-03")
    report = ingest(engine, FrameSource(later))

    assert (report.inserted, report.flagged) == (1, 1)
    assert _rows(engine, "SELECT count(*) FROM market_data.ohlcv WHERE review IS NOT NULL") == [
        (1,)
    ]


def test_ingesting_twice_leaves_identical_rows_flags_included(engine):
    bars = _bars({}, {"close": 120.0, "high": 121.0}, {"close": 121.0, "high": 122.0})
    first = ingest(engine, FrameSource(bars))
    rows = _table(engine)

    second = ingest(engine, FrameSource(bars))

    assert (first.inserted, first.flagged) == (3, 1)
    assert (second.inserted, second.updated, second.unchanged, second.flagged) == (0, 0, 3, 1)
    pd.testing.assert_frame_equal(_table(engine), rows)


def test_a_rejected_row_quarantined_again_is_stored_once_and_counted_as_seen_twice(engine):
    bars = _bars({}, {"high": 98.0})

    first = ingest(engine, FrameSource(bars))
    second = ingest(engine, FrameSource(bars))

    assert first.quarantined == second.quarantined == 1
    assert _rows(
        engine, "SELECT rule, times_seen, last_seen_at IS NOT NULL FROM market_data.quarantine"
    ) == [("high_below_body", 2, True)]


def test_a_malformed_csv_names_the_file_and_line_and_loads_nothing(engine, tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,x,10\n"
    )

    result = CliRunner().invoke(app, ["data", "ingest", "csv", str(path), "--symbol", "X"])

    assert result.exit_code != 0
    assert f"{path}: line 3: close is 'x', not a number" in str(result.exception)
    assert _rows(engine, "SELECT count(*) FROM market_data.ohlcv") == [(0,)]
    assert _rows(engine, "SELECT count(*) FROM market_data.quarantine") == [(0,)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "line 1: the file is empty"),
        ("date,open,high,low,close,volume\n", "line 2: the file has no rows"),
        (
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1,1,9\n",
            "line 3: has 7 fields, the header has 6",
        ),
        (
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\nsoon,1,2,0.5,1,1\n",
            "line 3: cannot read the time 'soon'",
        ),
    ],
)
def test_an_unparsable_csv_is_one_clear_error(engine, tmp_path: Path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_text(content)

    result = CliRunner().invoke(app, ["data", "ingest", "csv", str(path), "--symbol", "X"])

    assert f"{path}: {problem}" in str(result.exception)
    assert _rows(engine, "SELECT count(*) FROM market_data.ohlcv") == [(0,)]


LOAD = """
import sys
from sqlalchemy import create_engine
from prism.data.store import upsert_bars
from tests.benchmarks.synthetic import random_walk_bars

bars = random_walk_bars(symbols=4, bars=100_000, timeframe="1m", volatility=0.0005, drift=0.0)
print("ready", flush=True)
upsert_bars(create_engine(sys.argv[1]), bars, batch_rows=10_000)
"""


def test_a_load_killed_midway_and_run_again_equals_one_clean_load(engine, database_url):
    url = sqlalchemy_url(database_url)
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD, url],
        cwd=Path(__file__).parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
        stdout=subprocess.PIPE,
    )
    assert load.stdout is not None and load.stdout.readline().strip() == b"ready"
    stored = _wait_for_rows(engine, load)
    load.send_signal(signal.SIGKILL)
    load.wait()
    committed = _rows(engine, "SELECT count(*) FROM market_data.ohlcv")[0][0]
    bars = random_walk_bars(symbols=4, bars=100_000, timeframe="1m", volatility=0.0005, drift=0.0)
    assert 0 < stored <= committed < len(bars)

    inserted, updated = upsert_bars(engine, bars, batch_rows=10_000)
    table = _table(engine)

    assert (committed + inserted, updated) == (len(bars), 0)
    assert len(table) == len(bars) == len(table.drop_duplicates(["symbol", "timeframe", "time"]))
    expected = bars.sort_values(["symbol", "timeframe", "time"]).reset_index(drop=True)
    got = table[expected.columns].copy()
    got["time"] = got["time"].astype("datetime64[us, UTC]")
    pd.testing.assert_frame_equal(got, expected)
    assert table["review"].isna().all()


def _wait_for_rows(engine: Engine, load: subprocess.Popen[bytes]) -> int:
    """Poll the row count until the load has committed its first batch; return that count."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and load.poll() is None:
        count = _rows(engine, "SELECT count(*) FROM market_data.ohlcv")[0][0]
        if count:
            return int(count)
        time.sleep(0.01)
    raise AssertionError("the load committed nothing before it ended")
