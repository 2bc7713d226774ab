"""``prism report``: the scheduled report notebooks, run by hand.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from prism.core.settings import load_settings

if TYPE_CHECKING:
    pass


report_app = typer.Typer(help="Scheduled reports, run by hand.", no_args_is_help=True)


@report_app.command("daily")
def report_daily(
    day: Annotated[
        str | None, typer.Option("--date", help="the UTC day (YYYY-MM-DD; default today)")
    ] = None,
    deployment: Annotated[
        str | None, typer.Option(help="one deployment (default: every deployment)")
    ] = None,
) -> None:
    """Execute the daily report notebook (positions, P&L, risk, drift, fills) for a day and
    print where its HTML is; the runner's daily_report flow does the same every day."""
    from prism.monitoring.reports import run_daily_report

    print(run_daily_report(load_settings(), day, deployment, progress=sys.stderr.isatty()))
