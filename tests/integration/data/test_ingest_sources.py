"""`prism data ingest csv|parquet|skfolio` into real PostgreSQL: validate, quarantine, upsert."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.cli.app import app

CSV = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,180.09,180.88,181.91,181.22,71983600
2024-01-05,181.99,182.76,180.17,181.18,180.49,62303300
"""


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, ["data", "ingest", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_a_csv_loads_its_good_rows_and_quarantines_the_bad_one(engine, tmp_path: Path):
    path = tmp_path / "aapl.csv"
    path.write_text(CSV)

    output = _invoke(
        "csv", str(path), "--symbol", "AAPL", "--map", "Adj Close=close", "--tz", "America/New_York"
    )

    assert "csv: 4 bars received, 3 inserted, 0 updated, 0 unchanged, 1 quarantined" in output
    assert _rows(
        engine,
        "SELECT time::date::text, close, source FROM market_data.ohlcv "
        "WHERE symbol = 'AAPL' ORDER BY time",
    ) == [
        ("2024-01-02", 184.94, "csv"),
        ("2024-01-03", 183.55, "csv"),
        ("2024-01-05", 180.49, "csv"),
    ]
    assert _rows(
        engine, "SELECT source, symbol, rule, raw->>'high' FROM market_data.quarantine"
    ) == [("csv", "AAPL", "high_below_body", "180.09")]
    assert _rows(engine, "SELECT asset_class FROM market_data.assets WHERE symbol = 'AAPL'") == [
        ("unknown",)
    ]


def test_the_same_csv_twice_leaves_every_row_unchanged(engine, tmp_path: Path):
    path = tmp_path / "aapl.csv"
    path.write_text(CSV)
    _invoke("csv", str(path), "--symbol", "AAPL", "--map", "Adj Close=close")

    output = _invoke("csv", str(path), "--symbol", "AAPL", "--map", "Adj Close=close")

    assert "0 inserted, 0 updated, 3 unchanged, 1 quarantined" in output


def test_a_parquet_file_with_a_symbol_column_loads_hourly_bars(engine, tmp_path: Path):
    path = tmp_path / "bars.parquet"
    pl.read_csv(CSV.encode()).with_columns(pl.lit("MSFT").alias("Ticker")).write_parquet(path)

    output = _invoke("parquet", str(path), "--timeframe", "1h", "--map", "Ticker=symbol")

    assert "parquet: 4 bars received, 3 inserted" in output
    assert _rows(engine, "SELECT DISTINCT symbol, timeframe FROM market_data.ohlcv") == [
        ("MSFT", "1h")
    ]


def test_skfolio_loads_flat_daily_bars_for_the_chosen_stocks(engine):
    output = _invoke("skfolio", "--symbols", "AAPL,MSFT")

    assert "skfolio: 16,626 bars received, 16,626 inserted" in output
    assert _rows(
        engine,
        "SELECT symbol, count(*), min(time)::date::text, bool_and(open = close AND high = low), "
        "sum(volume) FROM market_data.ohlcv GROUP BY symbol ORDER BY symbol",
    ) == [("AAPL", 8313, "1990-01-02", True, 0.0), ("MSFT", 8313, "1990-01-02", True, 0.0)]
    assert _rows(engine, "SELECT count(*) FROM market_data.quarantine") == [(0,)]


def test_a_missing_column_is_reported_without_loading_anything(engine, tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text("Date,Price,Volume\n2024-01-02,1,10\n")

    result = CliRunner().invoke(app, ["data", "ingest", "csv", str(path), "--symbol", "X"])

    assert result.exit_code != 0
    assert "no column for open, high, low, close; columns found: Date, Price, Volume" in str(
        result.exception
    )
    assert _rows(engine, "SELECT count(*) FROM market_data.ohlcv") == [(0,)]


def test_a_files_calendar_is_stored_and_kept_when_the_next_file_names_none(engine, tmp_path: Path):
    path = tmp_path / "vod.csv"
    path.write_text(CSV)
    calendar = "SELECT calendar FROM market_data.assets WHERE symbol = 'VOD'"

    _invoke("csv", str(path), "--symbol", "VOD", "--map", "Adj Close=close", "--calendar", "XLON")
    assert _rows(engine, calendar) == [("XLON",)]

    _invoke("csv", str(path), "--symbol", "VOD", "--map", "Adj Close=close")
    assert _rows(engine, calendar) == [("XLON",)]

    _invoke("csv", str(path), "--symbol", "NEW", "--map", "Adj Close=close")
    assert _rows(engine, "SELECT calendar FROM market_data.assets WHERE symbol = 'NEW'") == [
        ("XNYS",)
    ]


def test_an_unknown_calendar_is_refused_before_anything_loads(engine, tmp_path: Path):
    path = tmp_path / "vod.csv"
    path.write_text(CSV)

    result = CliRunner().invoke(
        app, ["data", "ingest", "csv", str(path), "--symbol", "VOD", "--calendar", "XLONDON"]
    )

    assert result.exit_code == 1
    assert "unknown trading calendar 'XLONDON'; use an exchange_calendars name" in str(
        result.exception
    )
    assert _rows(engine, "SELECT count(*) FROM market_data.ohlcv") == [(0,)]
