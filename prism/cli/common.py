"""What every command module shares: the consoles, tables that fold long values, symbol lists and
the data-quality gate of ``prism backtest`` and ``prism sweep``.
"""

from __future__ import annotations

import json
import math
import numbers
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from prism.core.text import output_console

if TYPE_CHECKING:
    from sqlalchemy import Engine


console = output_console()
errors = output_console(stderr=True)


def folding_table(*headers: str, whole: str | None = None) -> Table:
    """Return a table that folds long values instead of cutting them; the ``whole`` column
    (an id to copy) is never broken."""
    table = Table()
    for header in headers:
        if header == whole:
            table.add_column(header, no_wrap=True, min_width=32)
        else:
            table.add_column(header, overflow="fold")
    return table


def symbol_list(text: str) -> list[str]:
    """Split a comma-separated symbol list, dropping blanks."""
    return [s.strip() for s in text.split(",") if s.strip()]


def quality_gate(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: str | None,
    end: str | None,
    allow_gaps: bool,
) -> None:
    """Refuse to run on bars with open gaps or a stale feed, unless ``allow_gaps``."""
    from prism.data.health import check_window

    if allow_gaps:
        errors.print(f"--allow-gaps: data-quality gate skipped for {', '.join(symbols)}")
        return
    check_window(engine, symbols, timeframe, start, end)


AllowGaps = Annotated[
    bool,
    typer.Option("--allow-gaps", help="run even on bars with open gaps or a stale feed"),
]


def plain_value(value: Any) -> Any:
    """Return ``value`` as strict JSON can hold it: None for NaN, infinities and missing values,
    int for integral numbers of integer type (numpy included), float for Decimal and numpy
    floats, ISO 8601 text for timestamps, lists for tuples."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, int | numbers.Integral):
        return int(value)
    if isinstance(value, float | Decimal | numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    try:
        missing = bool(value != value)  # NaT and pandas' NA are unequal to themselves
    except TypeError:
        missing = True
    if missing:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def strict_json(value: Any) -> str:
    """Return ``value`` as strict JSON (RFC 8259: no NaN or Infinity; see :func:`plain_value`)."""
    return json.dumps(plain_value(value), allow_nan=False)


def parse_moment(value: str, option: str) -> datetime:
    """Return ``value`` (``YYYY-MM-DD`` or an ISO 8601 time; naive means UTC) as a UTC time, or
    raise a usage error naming ``option``, the value and the accepted forms."""
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise typer.BadParameter(
            f"{value!r} is not a date ({err}); use YYYY-MM-DD such as 2018-12-31, or an ISO "
            "8601 time such as 2018-12-31T16:00",
            param_hint=option,
        ) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def moment_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Typer callback: check a date option's value with :func:`parse_moment`."""
    if value is not None:
        parse_moment(value, "/".join(param.opts))
    return value


def check_span(
    start: str | None, end: str | None, names: tuple[str, str] = ("--start", "--end")
) -> None:
    """Refuse a span whose start comes after its end, naming both options and values."""
    if start is None or end is None:
        return
    if parse_moment(start, names[0]) > parse_moment(end, names[1]):
        raise typer.BadParameter(
            f"{names[0]} {start} is after {names[1]} {end}; the span must run forwards",
            param_hint=names[0],
        )


Start = Annotated[
    str | None,
    typer.Option(help="first bar (UTC date, YYYY-MM-DD)", callback=moment_option),
]
End = Annotated[
    str | None,
    typer.Option(help="last bar (UTC date, YYYY-MM-DD)", callback=moment_option),
]


MIN_SAMPLE_BARS = 60
"""Fewer bars than this behind a Sharpe ratio or a drawdown make it noise (about a quarter of
daily bars): the figure is printed with a warning."""


def sample_warning(bars: int, what: str = "these metrics") -> str | None:
    """Return a warning when ``bars`` (the bars behind ``what``) are too few to judge by, or
    None."""
    if bars >= MIN_SAMPLE_BARS:
        return None
    return (
        f"{what} come from only {bars} bar(s) (fewer than {MIN_SAMPLE_BARS}): Sharpe, "
        "drawdown and returns this short are noise, not evidence"
    )
