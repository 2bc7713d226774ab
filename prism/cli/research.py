"""``prism research``: a research notebook run with papermill as one MLflow run, and notebook
sweeps.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import sys
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
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="run in this process (a new kernel) instead of the resident research worker",
        ),
    ] = False,
) -> None:
    """Execute a notebook with papermill as one MLflow run and print the run id. Parameters
    follow as `-p NAME VALUE`, repeatable: `-p fast 10 -p slow 50`. The run goes through the
    resident research worker (started by the first run, kept warm, restarted when code or
    settings change; `prism research worker status|stop`) unless `--no-worker` or
    PRISM_RESEARCH_WORKER=false."""
    settings = load_settings()
    parameters = parse_parameters(list(ctx.args))
    if no_worker or not settings.research_worker:
        from prism.research.notebooks import run_notebook

        run = run_notebook(settings, notebook, parameters)
    else:
        from prism.research.worker import run_in_worker

        run = run_in_worker(settings, notebook, parameters, say=_to_stderr)
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


def _to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


worker_app = typer.Typer(
    help="The resident research worker behind `prism research run`.", no_args_is_help=True
)
research_app.add_typer(worker_app, name="worker")


@worker_app.command("status")
def worker_status_command() -> None:
    """Show whether this workspace's research worker runs: pid, runs served, busy notebook,
    idle time against its limit, and whether it is current (a stale one is replaced by the next
    run)."""
    from prism.research.worker import worker_status

    status = worker_status(load_settings())
    if status is None:
        print("no research worker running")
        return
    if not status["answering"]:
        print(f"research worker {status['pid']} is not answering; the next run replaces it")
        return
    doing = f"running {status['busy']}" if status["busy"] else f"idle {status['idle_seconds']} s"
    print(
        f"research worker {status['pid']}: {doing} (exits after {status['idle_limit']:g} s "
        f"idle), {status['runs']} run(s), {status['queued']} queued, up "
        f"{status['uptime_seconds']} s, "
        f"{'current' if status['current'] else 'stale (code or settings changed)'}; "
        f"log {status['log']}"
    )


@worker_app.command("stop")
def worker_stop_command() -> None:
    """Stop this workspace's research worker (after the notebook it is running, if any)."""
    from prism.research.worker import stop_worker

    pid = stop_worker(load_settings(), say=_to_stderr)
    print(f"stopped research worker {pid}" if pid else "no research worker running")


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
