"""``prism research``: a research notebook run with papermill as one MLflow run, and notebook
sweeps.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prism.cli.common import console, errors, folding_table, sample_warning
from prism.core.errors import ConfigError
from prism.core.settings import load_settings

if TYPE_CHECKING:
    pass


research_app = typer.Typer(
    help="Research notebooks run with papermill and tracked in MLflow.", no_args_is_help=True
)


def parse_parameters(args: list[str]) -> dict[str, str]:
    """Return ``{NAME: VALUE}`` from ``-p NAME VALUE`` pairs (papermill's own syntax)."""
    parameters: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise ConfigError(
                f"expected `-p NAME VALUE`, got {' '.join([flag, *rest[:2]])!r}; "
                "example: prism research run notebooks/02_backtest_strategy.ipynb "
                "-p fast 10 -p slow 50"
            )
        name, value = rest.pop(0), rest.pop(0)
        parameters[name] = value
    return parameters


@research_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def research_run(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="the notebook to execute")],
) -> None:
    """Execute a notebook with papermill as one MLflow run and print the run id.

    Parameters follow as `-p NAME VALUE`, repeatable: `-p fast 10 -p slow 50`.
    """
    from prism.research.notebooks import run_notebook

    run = run_notebook(load_settings(), notebook, parse_parameters(list(ctx.args)))
    errors.print(f"executed notebook: {run.executed}")
    errors.print(", ".join(f"{k} {v:.4g}" for k, v in sorted(run.metrics.items())))
    periods = {k: v for k, v in run.metrics.items() if k.endswith("n_periods")}
    for key, value in sorted(periods.items()):
        label = key.removesuffix("n_periods").rstrip("_") or "whole-period"
        warning = sample_warning(int(value), f"the {label} metrics")
        if warning:
            errors.print(f"[yellow]warning:[/] {warning}")
    if run.stored_bytes is not None:
        errors.print(f"stored: {run.stored_bytes / 1e6:.2f} MB of artifacts")
    print(run.run_id)


@research_app.command(
    "sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def research_sweep(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="the notebook to execute")],
    grid: Annotated[
        list[str], typer.Option(help="axis: name=v1,v2,... or name=start..stop[:step]")
    ],
    workers: Annotated[
        int | None, typer.Option(help="notebooks run at once (default: one per core)")
    ] = None,
    keep: Annotated[int, typer.Option(help="best combinations kept as child runs")] = 3,
    metric: Annotated[str, typer.Option(help="metric that ranks the combinations")] = "oos_sharpe",
) -> None:
    """Execute a notebook over a parameter grid in parallel: one parent MLflow run with the
    whole grid as a table, child runs for the best `--keep`. Fixed parameters follow as
    `-p NAME VALUE`; a failing combination is reported with its cell and the sweep goes on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from prism.research.sweeps import Trial, parse_grid, sweep_notebook

    axes = parse_grid(grid)
    total = 1
    for values in axes.values():
        total *= len(values)
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=errors) as progress:
        task = progress.add_task(f"{notebook.name}: {total:,} combinations", total=total)

        def advance(trial: Trial) -> None:
            if trial.failed:
                progress.console.print(f"[red]failed[/] {trial.grid}: {trial.error}")
            progress.advance(task)

        result = sweep_notebook(
            load_settings(),
            notebook,
            axes,
            parse_parameters(list(ctx.args)),
            workers=workers,
            keep=keep,
            metric=metric,
            on_trial=advance,
        )
    table = result.table
    shown = folding_table("trial", *axes, result.metric, "status")
    ranked = table.sort_values(result.metric, ascending=False) if result.metric in table else table
    for row in ranked.head(10).to_dict("records"):
        shown.add_row(
            str(row["trial"]),
            *(str(row[name]) for name in axes),
            f"{row.get(result.metric, float('nan')):.4g}",
            row["status"],
        )
    console.print(shown)
    for problem in result.child_failures:
        errors.print(f"[red]kept child failed[/]: {problem}")
    failed = len(result.failures())
    errors.print(
        f"{len(table):,} trials ({failed} failed); parent run {result.parent_run_id}; "
        f"children: {', '.join(c.run_id for c in result.children) or 'none'}"
    )
    print(result.parent_run_id)
