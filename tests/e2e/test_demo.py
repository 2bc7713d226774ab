"""The README's promise, checked: `prism demo --no-serve` on a fresh workspace, then the
database and the MLflow registry. The dashboard's own tests (AppTest per page, Chromium
screenshots) are in test_dashboard.py."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from prism.core.settings import Settings
from prism.db import embedded
from prism.db.engine import connect

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    """Run the demo once in a fresh workspace; yield its environment and its output."""
    root = tmp_path_factory.mktemp("demo")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PRISM_DATABASE_URL", "MLFLOW_TRACKING_URI", "PREFECT_HOME")
    }
    env.update(PRISM_HOME=str(root / "home"), PRISM_MLRUNS_DIR=str(root / "mlruns"), COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-c", "from prism.cli.app import main; main()", "demo", "--no-serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    yield env, result.stdout
    embedded.stop(root / "home" / "postgres")


def _settings(env: dict[str, str]) -> Settings:
    return Settings(home=Path(env["PRISM_HOME"]), mlruns_dir=Path(env["PRISM_MLRUNS_DIR"]))


def test_the_demo_fills_the_database_with_bars_orders_fills_and_positions(demo):
    env, output = demo
    engine = connect(_settings(env))

    with engine.connect() as conn:
        count = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in (
                "market_data.ohlcv",
                "trading.orders",
                "trading.fills",
                "trading.positions",
                "trading.portfolio_snapshots",
                "audit.decisions",
            )
        }
        last_equity = conn.execute(
            text("SELECT equity FROM trading.portfolio_snapshots ORDER BY time DESC LIMIT 1")
        ).scalar()

    assert count["market_data.ohlcv"] == 10_062
    assert count["trading.orders"] > 0 and count["trading.fills"] > 0
    assert count["trading.positions"] > 0
    assert count["trading.portfolio_snapshots"] == 60
    assert count["audit.decisions"] == 120
    assert f"{float(last_equity):,.2f}" in output
    from prism.db.timescale_build import VERSION, read_status

    if read_status().installed and env.get("PRISM_TIMESCALEDB") != "off":
        assert f"TimescaleDB {VERSION} on PostgreSQL" in output
    else:
        assert "plain PostgreSQL mode:" in output


def test_the_demo_promotes_its_run_to_champion_with_the_executed_notebook(demo):
    env, output = demo
    settings = _settings(env)
    # the demo's own store: MLFLOW_TRACKING_URI in this process may point at another test's
    client = MlflowClient(f"sqlite:///{settings.mlruns_dir / 'mlflow.db'}")

    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    run = client.get_run(champion.run_id)

    assert champion.run_id in output
    assert run.info.status == "FINISHED"
    assert run.data.params["end"] < "2018-10-05"
    assert sorted(a.path for a in client.list_artifacts(champion.run_id, "notebook")) == [
        f"notebook/02_backtest_strategy-{champion.run_id}.html",
        f"notebook/02_backtest_strategy-{champion.run_id}.ipynb",
    ]
    with connect(settings).connect() as conn:
        decided_by = conn.execute(
            text(
                "SELECT decided_by FROM models.approvals WHERE version = :v AND action = 'promote'"
            ),
            {"v": str(champion.version)},
        ).scalars()
        assert list(decided_by) == [getpass.getuser()]
