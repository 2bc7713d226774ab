"""``prism demo``: the whole loop on real data, from an empty workspace to a live dashboard.

Ingest the bundled S&P 500 and NASDAQ bars, backtest the SMA crossover in a papermill-executed
notebook tracked by MLflow (on bars before the replay window only), promote it through the
gates, replay the newest bars through the Prefect ``trade_cycle`` flow on a paper account, and
serve the Streamlit dashboard. The runner and the dashboard run as their own processes, as they
do in production; this module only sequences them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta

from rich.console import Console
from sqlalchemy import Engine, text

from prism import ledger
from prism.core.errors import ConfigError, PrismError
from prism.core.settings import Settings, project_root, service_environment
from prism.data.sources import ArchBarSource
from prism.data.store import IngestReport, ingest
from prism.db.engine import open_database
from prism.live.replay import replay_times
from prism.registry import promotion
from prism.registry.gates import Overrides
from prism.research.notebooks import run_notebook

SYMBOLS = ["SPX", "NDX"]
NOTEBOOK = "notebooks/02_backtest_strategy.ipynb"


@dataclass(frozen=True)
class DemoReport:
    """The numbers ``prism demo`` ends with."""

    ingest: IngestReport
    run_id: str
    metrics: dict[str, float]
    model_version: str
    replay: dict[str, object]
    database: str = ""
    """What the database runs on (TimescaleDB and its version, or why plain PostgreSQL)."""


def reset_deployment(engine: Engine, deployment: str) -> None:
    """Delete a paper deployment's orders, fills, positions, snapshots, decisions and account,
    and clear its halt and remembered model version (its config.strategies row stays)."""
    with engine.begin() as conn:
        for table in ledger.DEPLOYMENT_TABLES:
            conn.execute(text(f"DELETE FROM {table} WHERE deployment = :d"), {"d": deployment})
        conn.execute(
            text(
                "UPDATE config.strategies SET halted = false, halt_reason = NULL, "
                "halted_at = NULL, halted_by = NULL, last_model_version = NULL "
                "WHERE deployment = :d"
            ),
            {"d": deployment},
        )


def subprocess_environment(settings: Settings) -> dict[str, str]:
    """Return this process's environment plus the settings the child processes must share."""
    env = {**os.environ, **service_environment(settings)}
    env["PRISM_HOME"] = str(settings.home)
    env["PRISM_MLRUNS_DIR"] = str(settings.mlruns_dir)
    return env


def replay(settings: Settings, bars: int) -> dict[str, object]:
    """Run ``python -m runner BARS`` (the Prefect replay) and return its JSON summary."""
    completed = subprocess.run(
        [sys.executable, "-m", "runner", str(bars)],
        cwd=project_root(),
        env=subprocess_environment(settings),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise PrismError(
            f"the runner's replay failed (exit code {completed.returncode}); "
            "its error is printed above"
        )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def run_demo(settings: Settings, bars: int, console: Console) -> DemoReport:
    """Run the demo's stages and return their figures."""
    with console.status("starting PostgreSQL and migrating the schema"):
        engine = open_database(settings)
    from prism.db.info import describe_server

    database = describe_server(engine, settings)
    console.print(
        f"[green]✓[/] database ready: {database} "
        f"({engine.url.render_as_string(hide_password=True)})"
    )

    with console.status("ingesting the bundled S&P 500 and NASDAQ daily bars (COPY)"):
        ingested = ingest(engine, ArchBarSource())
    console.print(
        f"[green]✓[/] ingested {ingested.received:,} bars: {ingested.inserted:,} new, "
        f"{ingested.unchanged:,} unchanged, {ingested.quarantined} quarantined"
    )

    reset_deployment(engine, settings.deployment)
    window = replay_times(engine, SYMBOLS, bars)
    research_end = (window[0] - timedelta(days=1)).date().isoformat()
    console.print(
        f"[bold]backtest[/] on bars up to {research_end}; replay window "
        f"{window[0].date()} → {window[-1].date()} ({len(window)} bars, out of sample)"
    )
    run = run_notebook(
        settings, project_root() / NOTEBOOK, {"end": research_end, "symbols": ",".join(SYMBOLS)}
    )
    console.print(
        f"[green]✓[/] MLflow run {run.run_id}: sharpe {run.metrics['sharpe']:.2f}, "
        f"max drawdown {run.metrics['max_drawdown']:.1%}, "
        f"{run.metrics['n_trades']:.0f} trades"
    )

    # The demo runs from whatever working copy it is started in; a local edit must not stop it,
    # so it waives the clean-tree gate, and the approval records that and why.
    promoted = promotion.promote(
        settings,
        run.run_id,
        approved_by=promotion.approver(),
        reason="prism demo",
        engine=engine,
        overrides=Overrides(dirty_tree=True, reason="prism demo promotes from a working copy"),
    )
    if not promoted.promoted:
        failed = "; ".join(f"{g.gate} (got {g.value})" for g in promoted.failed())
        raise ConfigError(f"the demo's backtest did not pass the promotion gates: {failed}")
    console.print(
        f"[green]✓[/] promoted {promoted.model_name} version {promoted.version} to alias 'champion'"
    )

    console.print(f"[bold]replaying[/] {len(window)} bars through the Prefect trade_cycle flow")
    replayed = replay(settings, bars)
    console.print(
        f"[green]✓[/] paper trading: {replayed['orders']} orders, "
        f"{replayed['fills']} fills, final equity {replayed['final_equity']:,.2f}"
    )
    return DemoReport(ingested, run.run_id, run.metrics, str(promoted.version), replayed, database)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_dashboard(settings: Settings, port: int = 8501) -> int:
    """Serve the Streamlit dashboard on 127.0.0.1:``port`` until interrupted: Ctrl-C, or a
    SIGTERM or SIGHUP (``kill``, a closed terminal), which stop the dashboard too instead of
    leaving it running without its parent."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(project_root() / "dashboards" / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return subprocess.call(command, env=subprocess_environment(settings), cwd=project_root())
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
