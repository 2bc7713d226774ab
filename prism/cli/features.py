"""``prism features``: the Parquet feature store and its catalog.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from prism.cli.common import console, errors, folding_table, symbol_list
from prism.core.settings import load_settings

if TYPE_CHECKING:
    pass


features_app = typer.Typer(
    help="The Parquet feature store and its catalog (features.catalog).", no_args_is_help=True
)

PROGRESS_FROM = 24
"""Show a progress bar when a build writes at least this many partitions."""


@features_app.command("build")
def features_build(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all)")] = None,
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    benchmark: Annotated[str, typer.Option(help="the symbol beta is measured against")] = "SPX",
) -> None:
    """Compute the features into Parquet, rewriting only the months whose bars changed."""
    from rich.progress import Progress

    from prism.db.engine import open_database
    from prism.features.store import build

    engine = open_database(load_settings())
    names = symbol_list(symbols) if symbols else None
    started = time.perf_counter()
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("writing partitions", total=None, visible=False)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM)

        report = build(engine, names, timeframe, benchmark, progress=advance)
    table = folding_table(
        "symbol", "months written", "months unchanged", "removed", "written range"
    )
    for line in report.by_symbol():
        span = f"{line.first_written} … {line.last_written}" if line.written else ""
        table.add_row(line.symbol, str(line.written), str(line.unchanged), str(line.removed), span)
    console.print(table)
    console.print(
        f"{len(report.written)} months written ({report.rows_written:,} rows), "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed under "
        f"{report.root / f'timeframe={timeframe}'} in {time.perf_counter() - started:.1f}s"
    )


@features_app.command("catalog")
def features_catalog() -> None:
    """Print features.catalog: each feature's meaning, category, formula, inputs and lookback."""
    from prism.db.engine import open_database
    from prism.features.store import read_catalog

    catalog = read_catalog(open_database(load_settings()))
    table = folding_table(
        "feature", "category", "dtype", "lookback", "description", "computation", "inputs"
    )
    for row in catalog.to_dict("records"):
        table.add_row(
            *(str(row[c]) for c in ("name", "category", "dtype", "lookback", "description")),
            str(row["computation"]),
            ", ".join(row["dependencies"]),
        )
    console.print(table)
