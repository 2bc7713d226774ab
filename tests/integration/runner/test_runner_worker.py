"""The work-pool path of the runner, as Docker Compose runs it: ``python -m runner.deploy``
creates the process work pool and registers the runner's six deployments with their schedules
on a Prefect server, and ``prefect worker start --pool prism --type process`` runs a flow run of
one of them to completion from this checkout's source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import DeploymentSort
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from prism.core.settings import Settings, project_root
from prism.live.serving import local_prefect_server
from runner.schedules import runner_schedules
from tests.integration.runner.test_runner_serve import serve_environment

POOL = "prism"


def worker_environment(settings, home: Path, api_url: str) -> dict[str, str]:
    return {
        **serve_environment(settings, home),
        "PREFECT_API_URL": api_url,
        "PRISM_RUNNER_CYCLE_SECONDS": "1800",
        "PRISM_RUNNER_INGEST_SECONDS": "900",
    }


@pytest.mark.timeout(600)
def test_deploy_registers_the_runner_on_a_work_pool_and_a_worker_runs_a_flow(
    settings, tmp_path, monkeypatch
):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    with local_prefect_server(settings) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        env = worker_environment(settings, home, api_url)

        deployed = subprocess.run(
            [sys.executable, "-m", "runner.deploy", "--pool", POOL],
            env=env,
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stderr[-3000:]

        for key in ("PRISM_RUNNER_CYCLE_SECONDS", "PRISM_RUNNER_INGEST_SECONDS"):
            monkeypatch.setenv(key, env[key])
        expected = {s.name: s for s in runner_schedules(Settings())}
        with get_client(sync_client=True) as client:
            pool = client.read_work_pool(POOL)
            found = {
                d.name: d
                for d in client.read_deployments(limit=50, sort=DeploymentSort.NAME_ASC)
                if d.work_pool_name == POOL
            }
        assert pool.type == "process"
        names = {"ingest", "trade", "reconcile", "alerts", "daily", "maintenance"}
        assert set(found) == set(expected) == names
        for name, deployment in found.items():
            assert f"/{name} on pool {POOL}" in deployed.stdout
            (schedule,) = [s.schedule for s in deployment.schedules]
            if expected[name].interval is not None:
                assert schedule.interval.total_seconds() == expected[name].interval
            else:
                assert schedule.cron == expected[name].cron

        run = run_deployment("reconcile/reconcile", timeout=0)
        worker = subprocess.run(
            [
                str(Path(sys.executable).parent / "prefect"),
                "worker",
                "start",
                "--pool",
                POOL,
                "--type",
                "process",
                "--run-once",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert worker.returncode == 0, worker.stderr[-3000:]
        with get_client(sync_client=True) as client:
            final = client.read_flow_run(run.id)
        assert final.state is not None
        assert final.state.is_completed(), (
            final.state,
            worker.stdout[-3000:],
            worker.stderr[-3000:],
        )
    assert os.environ.get("PREFECT_API_URL") is None


@pytest.mark.timeout(600)
def test_a_worker_stops_cleanly_on_sigterm_and_leaves_no_flow_run_process(
    settings, tmp_path, monkeypatch
):
    from tests.integration.runner.test_runner_stop import processes_of

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    with local_prefect_server(settings) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        env = worker_environment(settings, home, api_url)
        deployed = subprocess.run(
            [sys.executable, "-m", "runner.deploy", "--pool", POOL],
            env=env,
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        run = run_deployment("reconcile/reconcile", timeout=0)
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", POOL],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        try:
            deadline = time.monotonic() + 400
            state = None
            while time.monotonic() < deadline and worker.poll() is None:
                with get_client(sync_client=True) as client:
                    state = client.read_flow_run(run.id).state
                if state is not None and state.is_final():
                    break
                time.sleep(1)
            assert state is not None and state.is_completed(), (state, log.read_text()[-3000:])

            began = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=90)
            took = time.monotonic() - began
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        output = log.read_text(errors="replace")
        print(f"worker: exit {code} after {took:.1f} s")
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), output[-3000:]
        assert took < 30, output[-3000:]
        assert "Traceback" not in output, output[-6000:]
        assert processes_of(home) == []
