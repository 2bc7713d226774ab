"""The ``prism`` command line, assembled from one module per command group.

Every command reports a :class:`~prism.core.errors.PrismError` as one line naming the problem and
the fix, with exit code 1, instead of a traceback.
"""

from __future__ import annotations

import sys

import typer

from prism.cli import (
    alerts,
    api,
    backtest,
    config,
    data,
    db,
    demo,
    features,
    models,
    report,
    research,
    runner,
)
from prism.cli.common import errors
from prism.core.errors import PrismError

app = typer.Typer(
    help="Prism: notebook-first quant research with a promotion-to-production runner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("config")(config.config_command)
app.add_typer(db.db_app, name="db")
app.add_typer(data.data_app, name="data")
app.add_typer(features.features_app, name="features")
app.command("strategies")(backtest.strategies_command)
app.command("backtest")(backtest.backtest_command)
app.command("sweep")(backtest.sweep_command)
app.add_typer(research.research_app, name="research")
app.add_typer(models.models_app, name="models")
app.command("lineage")(models.lineage_command)
app.add_typer(runner.runner_app, name="runner")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(report.report_app, name="report")
app.command("demo")(demo.demo)
app.command("dashboard")(demo.dashboard)
app.add_typer(api.api_app, name="api")


def main() -> None:
    """Run the CLI, turning Prism's errors into one readable line and exit code 1."""
    try:
        app()
    except PrismError as err:
        errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
