"""``prism demo`` and ``prism dashboard``: the whole loop on real data (sequenced by
:mod:`prism.cli.demo_run`, imported when the command runs, since it loads MLflow and papermill),
and the Streamlit dashboard on its own."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from prism.cli.common import console
from prism.core.settings import load_settings


def demo(
    serve: Annotated[bool, typer.Option(help="serve the dashboard afterwards")] = True,
    bars: Annotated[int, typer.Option(help="bars to replay through the live runner")] = 60,
    port: Annotated[int, typer.Option(help="dashboard port")] = 8501,
) -> None:
    """Run the whole loop on real data: ingest, backtest, promote, paper-trade, dashboard."""
    from prism.cli.demo_run import run_demo, serve_dashboard

    settings = load_settings()
    started = time.perf_counter()
    report = run_demo(settings, bars, console)
    table = Table("stage", "result", title=f"Prism demo ({time.perf_counter() - started:.0f}s)")
    table.add_row("database", report.database)
    table.add_row("bars ingested", f"{report.ingest.received:,} ({report.ingest.inserted:,} new)")
    table.add_row("MLflow run", report.run_id)
    table.add_row(
        "backtest sharpe / max drawdown",
        f"{report.metrics['sharpe']:.2f} / {report.metrics['max_drawdown']:.1%}",
    )
    table.add_row("model promoted", f"{settings.model_name} v{report.model_version} @champion")
    table.add_row("orders / fills", f"{report.replay['orders']} / {report.replay['fills']}")
    table.add_row("final equity", f"{report.replay['final_equity']:,.2f}")
    console.print(table)
    if serve:
        console.print(f"dashboard on http://127.0.0.1:{port} — Ctrl-C to stop")
        serve_dashboard(settings, port)


def dashboard(port: Annotated[int, typer.Option(help="port")] = 8501) -> None:
    """Serve the Streamlit dashboard on http://127.0.0.1:PORT."""
    from prism.cli.demo_run import serve_dashboard

    serve_dashboard(load_settings(), port)
