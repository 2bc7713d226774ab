"""The resident research worker (``prism.research.worker``) with real papermill kernels and a real
MLflow store: a second run reuses the worker and gives the in-process run's metrics, an edited
module under ``research/`` restarts it, a worker killed mid-run fails its MLflow run and is
replaced, a failure reads as it does in-process, runs at once are serialised on its one kernel,
Ctrl-C marks the run FAILED, and ``prism research worker status|stop`` show and stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prism.core.errors import ConfigError
from prism.core.settings import Settings, project_root
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.research.notebooks import NotebookFailed, run_notebook
from prism.research.worker import (
    WorkerCrashed,
    WorkerState,
    run_in_worker,
    stop_worker,
    worker_paths,
)

NOTEBOOK = project_root() / "notebooks" / "02_backtest_strategy.ipynb"
PROBE = Path(__file__).parents[2] / "fixtures" / "notebooks" / "worker_probe.ipynb"
"""Logs its kernel's pid, start and end times and ``VALUE`` of ``module``; sleeps, fails."""
PARAMETERS = {
    "fast": "5",
    "slow": "20",
    "start": "2014-01-01",
    "end": "2016-12-31",
    "oos_fraction": "0.25",
    "parity_bars": "5",
}
PRISM = Path(sys.executable).with_name("prism")
RUN_ID = re.compile(r"[0-9a-f]{32}")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def research_module():
    """A module under research/ (``VALUE = 1.0``), written before any worker starts so the
    workers of the whole module see it; its name as the probe imports it."""
    name = f"worker_probe_{uuid.uuid4().hex[:8]}"
    path = project_root() / "research" / f"{name}.py"
    path.write_text("VALUE = 1.0\n")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def worker(settings, migrated_engine, research_module):
    """The session's workspace with the bundled bars; no worker is left running after it."""
    ingest(migrated_engine, ArchBarSource())
    stop_worker(settings)
    yield settings
    stop_worker(settings)


def worker_pid(settings) -> int:
    state = WorkerState.read(worker_paths(settings))
    assert state is not None and state.alive()
    return state.pid


def metrics_of(settings, run_id: str) -> dict[str, float]:
    return MlflowClient(settings.mlflow_tracking_uri).get_run(run_id).data.metrics


def test_a_second_run_reuses_the_worker_and_matches_an_in_process_run(worker):
    first = run_in_worker(worker, NOTEBOOK, PARAMETERS, progress=False)
    pid = worker_pid(worker)
    second = run_in_worker(worker, NOTEBOOK, PARAMETERS, progress=False)
    local = run_notebook(worker, NOTEBOOK, PARAMETERS, progress=False)

    assert worker_pid(worker) == pid
    assert second.metrics == local.metrics == first.metrics
    assert second.metrics["n_trades"] > 0
    client = MlflowClient(worker.mlflow_tracking_uri)
    runs = [client.get_run(r.run_id).info for r in (first, second)]
    assert [r.status for r in runs] == ["FINISHED", "FINISHED"]
    assert runs[0].end_time <= runs[1].start_time
    assert second.stored_bytes is not None and second.stored_bytes > 0


def test_a_failed_notebook_reads_as_in_process_and_leaves_the_worker_usable(worker):
    with pytest.raises(NotebookFailed) as remote:
        run_in_worker(worker, PROBE, {"fail": "True"}, progress=False)
    pid = worker_pid(worker)
    with pytest.raises(NotebookFailed) as local:
        run_notebook(worker, PROBE, {"fail": "True"}, progress=False)
    with pytest.raises(ConfigError) as remote_input:
        run_in_worker(worker, PROBE, {"nope": "1"}, progress=False)
    with pytest.raises(ConfigError) as local_input:
        run_notebook(worker, PROBE, {"nope": "1"}, progress=False)
    missing = PROBE.with_name("no_such_notebook.ipynb")
    with pytest.raises(ConfigError) as remote_missing:
        run_in_worker(worker, missing, {}, progress=False)
    with pytest.raises(ConfigError) as local_missing:
        run_notebook(worker, missing, {}, progress=False)
    after = run_in_worker(worker, PROBE, {}, progress=False)

    assert RUN_ID.sub("ID", str(remote.value)) == RUN_ID.sub("ID", str(local.value))
    assert str(remote_missing.value) == str(local_missing.value)
    assert "ValueError: the probe fails on purpose" in str(remote.value)
    (failed_id,) = set(RUN_ID.findall(str(remote.value)))
    assert MlflowClient(worker.mlflow_tracking_uri).get_run(failed_id).info.status == "FAILED"
    assert str(remote_input.value) == str(local_input.value)
    assert worker_pid(worker) == pid
    assert after.metrics["value"] == 0.0


def test_an_edited_research_module_restarts_the_worker(worker, research_module):
    parameters = {"module": f"research.{research_module.stem}"}
    before = run_in_worker(worker, PROBE, parameters, progress=False)
    pid = worker_pid(worker)
    research_module.write_text("VALUE = 20.0\n")
    after = run_in_worker(worker, PROBE, parameters, progress=False)

    assert (before.metrics["value"], after.metrics["value"]) == (1.0, 20.0)
    assert worker_pid(worker) != pid
    assert after.metrics["kernel_pid"] != before.metrics["kernel_pid"]


def test_a_worker_killed_mid_run_fails_its_run_and_is_replaced(worker):
    run_in_worker(worker, PROBE, {}, progress=False)
    pid = worker_pid(worker)
    started: list[str | None] = []
    crashed: list[WorkerCrashed] = []

    def victim() -> None:
        try:
            run_in_worker(
                worker,
                PROBE,
                {"sleep": "60"},
                progress=False,
                on_start=lambda seen: started.append(seen.run_id),
            )
        except WorkerCrashed as err:
            crashed.append(err)

    thread = threading.Thread(target=victim)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not started:
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    said: list[str] = []

    after = run_in_worker(worker, PROBE, {}, progress=False, say=said.append)

    (run_id,) = started
    assert run_id is not None and len(crashed) == 1
    assert f"MLflow run {run_id} marked FAILED" in str(crashed[0])
    assert MlflowClient(worker.mlflow_tracking_uri).get_run(run_id).info.status == "FAILED"
    assert worker_pid(worker) != pid
    assert after.metrics["value"] == 0.0
    assert any("starting the research worker" in line for line in said)


def test_runs_at_once_take_turns_on_the_one_kernel(worker):
    run_in_worker(worker, PROBE, {}, progress=False)
    results: dict[int, dict[str, float]] = {}
    said: list[str] = []

    def one(index: int) -> None:
        run = run_in_worker(worker, PROBE, {"sleep": "2.0"}, progress=False, say=said.append)
        results[index] = run.metrics

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(120)

    first, second = sorted(results.values(), key=lambda m: m["started"])
    assert first["kernel_pid"] == second["kernel_pid"]
    assert first["ended"] <= second["started"]
    assert any("busy with worker_probe.ipynb" in line for line in said)


def test_ctrl_c_marks_the_run_failed_and_the_worker_goes_on(worker):
    run_in_worker(worker, PROBE, {}, progress=False)
    command = [str(PRISM), "research", "run", str(PROBE), "-p", "sleep", "60"]
    client = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PRISM_RESEARCH_WORKER": "true"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _busy(worker):
        time.sleep(0.2)
    time.sleep(1.0)
    client.send_signal(signal.SIGINT)
    _, stderr = client.communicate(timeout=120)

    assert client.returncode == 1, stderr
    assert "KeyboardInterrupt" in stderr and "marked FAILED" in stderr
    (run_id,) = set(RUN_ID.findall(stderr.split("error:")[-1]))
    assert MlflowClient(worker.mlflow_tracking_uri).get_run(run_id).info.status == "FAILED"
    assert run_in_worker(worker, PROBE, {}, progress=False).metrics["value"] == 0.0


def _busy(settings) -> bool:
    from prism.research.worker import worker_status

    status = worker_status(settings)
    return bool(status and status.get("busy"))


def test_status_and_stop(worker):
    from prism.cli.app import app

    run_in_worker(worker, PROBE, {}, progress=False)
    pid = worker_pid(worker)
    runner = CliRunner()

    shown = runner.invoke(app, ["research", "worker", "status"])
    stopped = runner.invoke(app, ["research", "worker", "stop"])
    gone = runner.invoke(app, ["research", "worker", "status"])

    assert shown.exit_code == 0 and f"research worker {pid}" in shown.stdout
    assert "current" in shown.stdout and "run(s)" in shown.stdout
    assert stopped.stdout.strip() == f"stopped research worker {pid}"
    assert gone.stdout.strip() == "no research worker running"
    assert not WorkerState(pid, "", "", 0).alive()


def test_an_idle_worker_exits_on_its_own_and_a_setting_change_replaces_it(worker, monkeypatch):
    run_in_worker(worker, PROBE, {}, progress=False)
    pid = worker_pid(worker)
    monkeypatch.setenv("PRISM_RESEARCH_WORKER_IDLE_SECONDS", "2")
    short = Settings()

    run_in_worker(short, PROBE, {}, progress=False)
    idle = worker_pid(short)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and WorkerState(idle, "", "", 0).alive():
        time.sleep(0.2)

    assert idle != pid and not WorkerState(pid, "", "", 0).alive()
    assert not WorkerState(idle, "", "", 0).alive()
    assert WorkerState.read(worker_paths(short)) is None
    assert "idle for 2 s: exiting" in worker_paths(short).log.read_text()
