"""What every command module shares: the consoles, tables that fold long values, symbol lists and
the data-quality gate of ``prism backtest`` and ``prism sweep``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

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
    from prism.data.health import check_quality

    if allow_gaps:
        errors.print(f"--allow-gaps: data-quality gate skipped for {', '.join(symbols)}")
        return
    check_quality(engine, symbols, timeframe, start, end, now=gate_moment(end))


def gate_moment(end: str | None) -> datetime:
    """The moment a stale feed is judged at: the end of the run, or now."""
    now = datetime.now(UTC)
    if end is None:
        return now
    stamp = datetime.fromisoformat(end)
    return min(now, stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))


AllowGaps = Annotated[
    bool,
    typer.Option("--allow-gaps", help="run even on bars with open gaps or a stale feed"),
]
