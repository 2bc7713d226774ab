"""The README's promise, checked: `prism demo --no-serve` on a fresh workspace, then the
database, the MLflow registry and the Streamlit app (AppTest and a Chromium screenshot)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from prism.config import Settings
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
        [sys.executable, "-c", "from prism.cli import main; main()", "demo", "--no-serve"],
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


def test_the_demo_promotes_its_run_to_champion_with_the_executed_notebook(demo):
    env, output = demo
    settings = _settings(env)
    client = MlflowClient(settings.mlflow_tracking_uri)

    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    run = client.get_run(champion.run_id)

    assert champion.run_id in output
    assert run.info.status == "FINISHED"
    assert run.data.params["end"] < "2018-10-05"
    assert [a.path for a in client.list_artifacts(champion.run_id, "notebook")] == [
        f"notebook/backtest-{champion.run_id}.ipynb"
    ]


def test_the_dashboard_shows_the_demo_accounts_equity_and_the_champion(demo, monkeypatch):
    from streamlit.testing.v1 import AppTest

    env, _ = demo
    for key in ("PRISM_HOME", "PRISM_MLRUNS_DIR"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("PRISM_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    engine = connect(_settings(env))
    with engine.connect() as conn:
        equity = conn.execute(
            text("SELECT equity FROM trading.portfolio_snapshots ORDER BY time DESC LIMIT 1")
        ).scalar()

    app = AppTest.from_file(str(ROOT / "dashboards" / "app.py"), default_timeout=120).run()

    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["equity"] == f"{float(equity):,.0f}"
    assert "version **1**" in " ".join(m.value for m in app.markdown)
    assert len(app.get("plotly_chart")) == 1
    assert len(app.dataframe) == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_the_dashboard_renders_in_headless_chromium(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    env, _ = demo
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboards" / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shot = tmp_path / "dashboard.png"
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Decisions (audit)").wait_for(timeout=120_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            text_shown = page.inner_text("body")
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Champion model" in text_shown and "prism-strategy" in text_shown
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1400
    assert len({tuple(p) for p in pixels[::10, ::10].reshape(-1, pixels.shape[2])}) > 20
    if os.environ.get("PRISM_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["PRISM_KEEP_SCREENSHOT"])


def _wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds}s")
