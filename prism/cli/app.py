"""The ``prism`` command line, assembled from one module per command group.

Every command reports a :class:`~prism.core.errors.PrismError` as one line naming the problem and
the fix, with exit code 1, instead of a traceback.

A command's module is imported only when that command runs: :data:`COMMANDS` names each command's
module, object and one-line help, so ``prism --help`` lists them all without importing any of
them (a unit test keeps those lines equal to the commands' own help). ``prism config`` therefore
pays for settings alone, and only commands that touch MLflow pay for MLflow.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Entry:
    """Where one top-level command lives: ``module.attribute`` is a command function or a
    :class:`typer.Typer` sub-app, and ``help`` is the line ``prism --help`` shows for it."""

    module: str
    attribute: str
    help: str


COMMANDS: dict[str, Entry] = {
    "config": Entry(
        "prism.cli.config",
        "config_command",
        "Print the effective configuration and where each value came from.",
    ),
    "db": Entry(
        "prism.cli.db",
        "db_app",
        "The PostgreSQL database (embedded unless PRISM_DATABASE_URL is set).",
    ),
    "data": Entry("prism.cli.data", "data_app", "Market data."),
    "features": Entry(
        "prism.cli.features",
        "features_app",
        "The Parquet feature store and its catalog (features.catalog).",
    ),
    "strategies": Entry(
        "prism.cli.strategies",
        "strategies_command",
        "List the strategies (built in and registered by research/) with their parameters.",
    ),
    "backtest": Entry(
        "prism.cli.backtest",
        "backtest_command",
        "Backtest a strategy on stored bars and print its metrics (no MLflow run); bars with "
        "open gaps or a stale feed are refused unless --allow-gaps. Capital and costs default to "
        "the settings; --rebalance change --lot 1 --size-at fill --slippage-bps 0 trades as "
        "backtesting.py and vectorbt's from_signals do.",
    ),
    "sweep": Entry(
        "prism.cli.backtest",
        "sweep_command",
        "Backtest every combination of a parameter grid in parallel (threads here, or the Dask "
        "cluster at PRISM_DASK_ADDRESS) and print the best, with its deflated Sharpe ratio. An "
        "sma_crossover sweep of one symbol with --rebalance change --size-at fill runs fused on "
        "this machine's cores (shared averages, one pass per combination).",
    ),
    "research": Entry(
        "prism.cli.research",
        "research_app",
        "Research notebooks run with papermill and tracked in MLflow.",
    ),
    "models": Entry("prism.cli.models", "models_app", "The MLflow model registry."),
    "mlflow": Entry(
        "prism.cli.mlflow",
        "mlflow_app",
        "MLflow on the project's own tracking store.",
    ),
    "lineage": Entry(
        "prism.cli.models",
        "lineage_command",
        "Trace an order back: decision, model version and alias, MLflow run, notebook.",
    ),
    "orders": Entry("prism.cli.orders", "orders_app", "Orders the runner has placed."),
    "runner": Entry(
        "prism.cli.runner",
        "runner_app",
        "The live runner: deployments, kill switch, replay and `serve` on Prefect.",
    ),
    "alerts": Entry(
        "prism.cli.alerts",
        "alerts_app",
        "Alerts through apprise to the URLs in PRISM_ALERT_URLS.",
    ),
    "report": Entry("prism.cli.report", "report_app", "Scheduled reports, run by hand."),
    "api": Entry(
        "prism.cli.api",
        "api_app",
        "The REST/WebSocket API: serve it, manage its users and keys.",
    ),
    "demo": Entry(
        "prism.cli.demo",
        "demo",
        "Run the whole loop on real data: ingest, backtest, promote, paper-trade, dashboard.",
    ),
    "dashboard": Entry(
        "prism.cli.demo",
        "dashboard",
        "Serve the Streamlit dashboard on http://127.0.0.1:PORT.",
    ),
}
"""Every top-level command, in the order ``prism --help`` lists them."""


def load_command(name: str, entry: Entry, markup: Any) -> Any:
    """Import ``entry``'s module and return its command as a click command named ``name``."""
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    return typer.main.get_command_from_info(
        typer.models.CommandInfo(name=name, callback=target),
        pretty_exceptions_short=True,
        rich_markup_mode=markup,
    )


class LazyGroup(TyperGroup):
    """A Typer group that imports a command's module when the command is resolved, and lists
    the commands for ``--help`` from :data:`COMMANDS` without importing anything."""

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        """Return every command name, in :data:`COMMANDS` order."""
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """Return the command ``cmd_name``: a help-only stand-in while help is being listed,
        otherwise the real command, imported now."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self.listing:
            return TyperCommand(cmd_name, help=entry.help)
        return load_command(cmd_name, entry, self.rich_markup_mode)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Print the help with stand-ins for the commands, so listing them imports none."""
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    cls=LazyGroup,
    help="Prism: notebook-first quant research with a promotion-to-production runner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def prism_callback() -> None:
    """Prism: notebook-first quant research with a promotion-to-production runner."""


def main() -> None:
    """Run the CLI, turning Prism's errors into one readable line and exit code 1."""
    from prism.core.errors import PrismError

    try:
        app()
    except PrismError as err:
        from prism.cli.common import errors

        errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
