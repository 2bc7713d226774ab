"""``prism data``: ingest from every source, gaps and backfill, data status, indicators.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from prism.cli.common import console, folding_table, moment_option, symbol_list
from prism.core.settings import load_settings

if TYPE_CHECKING:
    from prism.data.gaps import BackfillResult
    from prism.data.sources import BarSource


data_app = typer.Typer(help="Market data.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load bars into market_data.ohlcv.", no_args_is_help=True)
data_app.add_typer(ingest_app, name="ingest")


def _ingest(source: BarSource) -> None:
    """Validate, quarantine and upsert ``source``'s bars, then print what happened."""
    from prism.data.gaps import ingest_and_heal
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    started = time.perf_counter()
    report, healed = ingest_and_heal(engine, source)
    console.print(
        f"{report.source}: {report.received:,} bars received, {report.inserted:,} "
        f"inserted, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.quarantined:,} quarantined, {report.flagged:,} flagged for review in "
        f"{time.perf_counter() - started:.1f}s"
    )
    if healed:
        _print_backfill(healed)


def _print_backfill(results: list[BackfillResult]) -> None:
    """Print one row per backfilled gap: how many bars came back, and why not all."""
    table = folding_table(
        "symbol", "timeframe", "start", "end", "missing", "filled", "source", "note"
    )
    for r in results:
        g = r.gap
        table.add_row(
            g.symbol,
            g.timeframe,
            str(g.start),
            str(g.end),
            str(g.missing),
            str(r.filled),
            r.source,
            r.reason,
        )
    console.print(table)
    console.print(
        f"backfill: {sum(r.filled for r in results):,} bars restored in {len(results)} gap(s); "
        f"{sum(r.unfilled for r in results):,} could not be filled"
    )


@ingest_app.command("bundled")
def ingest_bundled() -> None:
    """Load the daily S&P 500 (SPX) and NASDAQ (NDX) bars that ship with `arch`, 1999-2018."""
    from prism.data.sources import ArchBarSource

    _ingest(ArchBarSource())


@ingest_app.command("skfolio")
def ingest_skfolio(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all 20)")] = None,
) -> None:
    """Load the daily closes of 20 S&P 500 stocks that ship with `skfolio`, 1990-2022
    (flat bars: open = high = low = close, volume 0)."""
    from prism.data.sources import SkfolioBarSource

    _ingest(SkfolioBarSource(symbol_list(symbols) if symbols else None))


FileSymbol = Annotated[
    str | None, typer.Option(help="the symbol of every row (else the file needs a symbol column)")
]


FileTimeframe = Annotated[str, typer.Option(help="bar timeframe: 1m, 5m, 1h or 1d")]


FileMap = Annotated[
    list[str] | None,
    typer.Option("--map", help="FILE_COLUMN=BAR_COLUMN, repeatable: --map 'Adj Close=close'"),
]


FileTimezone = Annotated[
    str, typer.Option("--tz", help="time zone of naive timestamps (IANA name)")
]


FileCalendar = Annotated[
    str | None,
    typer.Option(
        help="trading calendar for gap detection: an exchange_calendars name (XNYS, XLON, …) "
        "or 24/7; default: keep a known symbol's, XNYS for a new one"
    ),
]


FileDateFormat = Annotated[
    str | None, typer.Option(help="strftime format of the time column, e.g. %d/%m/%Y")
]


def _ingest_file(
    path: Path,
    file_format: Literal["csv", "parquet"],
    symbol: str | None,
    timeframe: str,
    mapping: list[str] | None,
    tz: str,
    date_format: str | None,
    calendar: str | None,
) -> None:
    """Ingest one file through :class:`~prism.data.files.FileBarSource`."""
    from prism.data.files import FileBarSource, parse_mapping

    _ingest(
        FileBarSource(
            path,
            symbol,
            timeframe,
            parse_mapping(mapping or []),
            tz,
            date_format,
            file_format,
            calendar,
        )
    )


@ingest_app.command("csv")
def ingest_csv(
    path: Annotated[Path, typer.Argument(help="the CSV file")],
    symbol: FileSymbol = None,
    timeframe: FileTimeframe = "1d",
    mapping: FileMap = None,
    tz: FileTimezone = "UTC",
    date_format: FileDateFormat = None,
    calendar: FileCalendar = None,
) -> None:
    """Load bars from a CSV file (columns time, open, high, low, close, volume after --map)."""
    _ingest_file(path, "csv", symbol, timeframe, mapping, tz, date_format, calendar)


@ingest_app.command("parquet")
def ingest_parquet(
    path: Annotated[Path, typer.Argument(help="the Parquet file")],
    symbol: FileSymbol = None,
    timeframe: FileTimeframe = "1d",
    mapping: FileMap = None,
    tz: FileTimezone = "UTC",
    date_format: FileDateFormat = None,
    calendar: FileCalendar = None,
) -> None:
    """Load bars from a Parquet file (columns time, open, high, low, close, volume after --map)."""
    _ingest_file(path, "parquet", symbol, timeframe, mapping, tz, date_format, calendar)


@ingest_app.command("yahoo")
def ingest_yahoo(
    symbols: Annotated[str, typer.Argument(help="comma-separated Yahoo symbols: AAPL,^GSPC")],
    interval: Annotated[str, typer.Option(help="1m, 5m, 1h or 1d")] = "1d",
    start: Annotated[
        str | None, typer.Option(help="first day (YYYY-MM-DD)", callback=moment_option)
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="day after the last (exclusive)", callback=moment_option)
    ] = None,
    adjust: Annotated[bool, typer.Option(help="split- and dividend-adjusted prices")] = True,
) -> None:
    """Load bars from Yahoo Finance through yfinance (needs the network)."""
    from prism.data.yahoo import YahooBarSource

    _ingest(YahooBarSource(symbol_list(symbols), interval, start, end, adjust))


@ingest_app.command("ccxt")
def ingest_ccxt(
    exchange: Annotated[str, typer.Argument(help="a ccxt exchange id: binance, kraken, …")],
    symbols: Annotated[str, typer.Argument(help="comma-separated unified symbols: BTC/USDT")],
    timeframe: Annotated[str, typer.Option(help="1m, 5m, 1h or 1d")] = "1h",
    since: Annotated[
        str, typer.Option(help="first candle (UTC date or time)", callback=moment_option)
    ] = "2024-01-01",
    until: Annotated[
        str | None, typer.Option(help="last candle (default: now)", callback=moment_option)
    ] = None,
    limit: Annotated[int, typer.Option(help="candles asked for per request")] = 1000,
) -> None:
    """Load candles from a crypto exchange through ccxt, paged within its rate limit."""
    from prism.data.crypto import CcxtBarSource

    _ingest(CcxtBarSource(exchange, symbol_list(symbols), timeframe, since, until, limit))


@data_app.command("indicators")
def data_indicators(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all)")] = None,
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
) -> None:
    """Compute the indicators (SMA, EMA, RSI, MACD, ATR, Bollinger, ADX) and store them."""
    from prism.data.store import read_bars, store_indicators, stored_symbols
    from prism.db.engine import open_database
    from prism.features import indicators

    engine = open_database(load_settings())
    names = symbol_list(symbols) if symbols else stored_symbols(engine, timeframe)
    values = indicators.compute(read_bars(engine, names, timeframe=timeframe))
    written = store_indicators(engine, values, timeframe)
    console.print(
        f"{written:,} indicator values for {', '.join(names)} ({timeframe}) stored "
        "in market_data.indicators"
    )


GapSymbol = Annotated[str | None, typer.Option(help="comma-separated (default: all)")]


GapTimeframe = Annotated[str | None, typer.Option(help="1m, 5m, 1h or 1d (default: all)")]


@data_app.command("gaps")
def data_gaps(
    symbol: GapSymbol = None,
    timeframe: GapTimeframe = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """List missing bars against each symbol's trading calendar, as ranges."""
    from prism.data.gaps import find_gaps
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    found = find_gaps(engine, symbol_list(symbol) if symbol else None, timeframe)
    if as_json:
        print(json.dumps([gap.as_dict() for gap in found], indent=2))
        return
    table = folding_table("symbol", "timeframe", "start", "end", "missing")
    for gap in found:
        table.add_row(gap.symbol, gap.timeframe, str(gap.start), str(gap.end), str(gap.missing))
    console.print(table)
    console.print(f"{len(found)} gap(s), {sum(g.missing for g in found):,} missing bars")


@data_app.command("backfill")
def data_backfill(symbol: GapSymbol = None, timeframe: GapTimeframe = None) -> None:
    """Fetch exactly the missing ranges from each symbol's source; report what stays missing."""
    from prism.data.gaps import backfill, find_gaps
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    found = find_gaps(engine, symbol_list(symbol) if symbol else None, timeframe)
    if not found:
        console.print("no gaps: nothing to backfill")
        return
    _print_backfill(backfill(engine, found))


@data_app.command("status")
def data_status_command(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Per symbol and timeframe: span, bars, open gaps, quarantined rows and staleness
    (stale live feeds are also written to audit.system_events)."""
    from prism.data.health import data_status
    from prism.db.engine import open_database

    statuses = data_status(open_database(load_settings()))
    if as_json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    columns = ("symbol", "timeframe", "source", "first", "last", "bars", "gaps", "missing")
    table = folding_table(*columns, "quarantined", "staleness")
    for s in statuses:
        shown = {**s.as_dict(), "bars": f"{s.bars:,}", "missing": f"{s.missing:,}"}
        table.add_row(*(str(shown[c]) for c in (*columns, "quarantined", "staleness")))
    console.print(table)
