"""Scale-out on the work-pool path: two ``prefect worker`` processes on one pool, each polling its
own work queue, run ``trade_all`` for the same deployment and the same bar at the same time. The
deployment's advisory lock and the idempotent order keys make the second cycle change nothing:
one order per symbol for that bar, one decision each, whichever worker came second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import text

from prism.core.settings import project_root
from prism.live import deployments
from prism.live.serving import ensure_process_pool, local_prefect_server
from prism.registry import promotion
from prism.strategies import SmaCrossover
from tests.integration.runner.test_runner_worker import POOL, worker_environment
from tests.integration.runner_support import (
    CAPITAL,
    LENIENT,
    SYMBOLS,
    loosen_limits,
    research_run,
    use_mlflow_store,
)

QUEUES = ("first", "second")


def register_trade_all() -> None:
    """Register ``trade_all`` on the process pool from this checkout's source, as
    :func:`runner.deploy.deploy_runner` registers it (only that deployment, to keep the test
    short)."""
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

    ensure_process_pool(POOL)
    flow = cast(
        Flow, Flow.from_source(source=project_root(), entrypoint="runner/flows.py:trade_all")
    )
    cast(RunnerDeployment, flow.to_deployment(name="trade")).apply(work_pool_name=POOL)


@pytest.mark.timeout(600)
def test_two_workers_trading_the_same_bar_send_each_order_once(
    stocked, settings, bundled_bars, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    use_mlflow_store(monkeypatch, home / "mlruns")
    store = settings.model_copy(update={"mlruns_dir": home / "mlruns"})
    run_id = research_run(store, SmaCrossover(fast=5, slow=20, allow_short=True), bundled_bars)
    assert promotion.promote(store, run_id, LENIENT, "alice", engine=stocked).promoted
    loosen_limits(stocked, "scale-out test")
    deployments.upsert_deployment(
        stocked, deployments.Deployment("shared", SYMBOLS, "1d", CAPITAL, model_alias="champion")
    )
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with local_prefect_server(settings) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        env = {
            **worker_environment(settings, home, api_url),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlruns'}/mlflow.db",
            "PRISM_RUNNER_STALE_INTERVALS": "100000",
        }
        register_trade_all()
        with get_client(sync_client=True) as client:
            for queue in QUEUES:
                client.create_work_queue(name=queue, work_pool_name=POOL)
        runs = [
            run_deployment("trade_all/trade", timeout=0, work_queue_name=queue) for queue in QUEUES
        ]
        prefect = str(Path(sys.executable).parent / "prefect")
        workers = [
            subprocess.Popen(
                [prefect, "worker", "start", "--pool", POOL, "--work-queue", queue, "--run-once"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for queue in QUEUES
        ]
        outputs = [worker.communicate(timeout=400)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs
        with get_client(sync_client=True) as client:
            finished = [client.read_flow_run(run.id) for run in runs]
    for run, output in zip(finished, outputs, strict=True):
        assert run.state is not None and run.state.is_completed(), (run.state, output[-3000:])
        assert str(run.id) in output  # this worker ran this run
    with stocked.connect() as conn:
        per_symbol = conn.execute(
            text(
                "SELECT o.symbol, count(*) AS orders, (SELECT count(*) FROM audit.decisions d "
                "WHERE d.deployment = o.deployment AND d.symbol = o.symbol) AS decisions "
                "FROM trading.orders o WHERE o.deployment = 'shared' GROUP BY o.deployment, "
                "o.symbol ORDER BY o.symbol"
            )
        ).all()
    assert per_symbol, "the deployment must have traded"
    assert [(r.orders, r.decisions) for r in per_symbol] == [(1, 1)] * len(per_symbol), per_symbol
