"""``prism orders list`` on real orders, ``prism mlflow ui`` serving the project's store, and a
failed run refused by promotion before any gate is read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prism import ledger
from prism.cli.app import app
from prism.core.errors import ConfigError
from prism.ledger import OrderRow
from prism.registry import promotion
from prism.research.mlflow_store import mlflow_client

runner = CliRunner()


@pytest.fixture
def own_store(settings, tmp_path, monkeypatch):
    """Settings whose MLflow store is this test's own folder."""
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    return settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns"})


def _order(engine, deployment: str, symbol: str, hour: int, status: str) -> str:
    order = OrderRow(
        client_order_id=f"{deployment}:{symbol}:{hour}",
        deployment=deployment,
        symbol=symbol,
        side="buy",
        quantity=Decimal("12.5"),
        strategy="sma_crossover",
        model_name="prism-strategy",
        model_version="1",
        decided_at=datetime(2024, 3, 1, hour, tzinfo=UTC),
        broker="paper",
    )
    with engine.begin() as conn:
        ledger.insert_order(conn, order, None, status=status)
    return order.client_order_id


def test_orders_list_filters_by_deployment_and_status_and_prints_strict_json(engine):
    for deployment in ("alpha", "beta"):
        ledger.ensure_account(engine, deployment, Decimal("100000"))
    a1 = _order(engine, "alpha", "SPX", 10, "sent")
    a2 = _order(engine, "alpha", "NDX", 11, "pending")
    _order(engine, "beta", "SPX", 12, "sent")

    alpha = runner.invoke(app, ["orders", "list", "--deployment", "alpha", "--json"])
    sent = runner.invoke(app, ["orders", "list", "--status", "sent", "--json"])
    table = runner.invoke(app, ["orders", "list"], env={"COLUMNS": "250"})

    assert alpha.exit_code == 0, alpha.output
    rows = json.loads(alpha.output, parse_constant=lambda c: pytest.fail(c))
    assert [r["client_order_id"] for r in rows] == [a2, a1]
    assert rows[0]["quantity"] == 12.5 and rows[0]["average_fill_price"] is None
    assert {r["deployment"] for r in json.loads(sent.output)} == {"alpha", "beta"}
    assert all(r["status"] == "sent" for r in json.loads(sent.output))
    assert table.exit_code == 0 and a1 in table.output and "beta" in table.output


def test_an_unknown_order_status_names_the_option_value_and_choices(engine):
    result = runner.invoke(app, ["orders", "list", "--status", "maybe"])

    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert "--status" in text and "'maybe'" in text and "rejected" in text


def test_promoting_a_failed_run_says_it_failed_before_any_gate(engine, own_store):
    client = mlflow_client(own_store)
    experiment = client.create_experiment("failed-runs")
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id, status="FAILED")

    with pytest.raises(ConfigError) as err:
        promotion.promote(own_store, run.info.run_id, approved_by="alice", engine=engine)

    assert "failed" in str(err.value) and run.info.run_id in str(err.value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mlflow_ui_serves_the_projects_own_store(own_store):
    experiment = MlflowClient(own_store.mlflow_tracking_uri).create_experiment("shown-in-ui")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from prism.cli.app import main; main()",
            "mlflow",
            "ui",
            "--port",
            str(port),
        ],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = (
        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
        "?experiment_name=shown-in-ui"
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    body = json.loads(answer.read())
                break
            except OSError:
                assert server.poll() is None, "the MLflow UI exited"
                assert time.monotonic() < deadline, "the MLflow UI never answered"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    assert body["experiment"]["experiment_id"] == experiment
