"""Background jobs through the API: a backtest job ends with what the engine computes, a
failing one says why, a notebook runs with papermill as an MLflow run, sweeps rank their
grid as the library does, and jobs of a dead API process are marked failed, not lost."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from prism.api.jobs import ABANDONED, JobRunner
from prism.backtest.engine import BacktestConfig, report, run_backtest
from prism.backtest.sweep import best, expand_grid, run_sweep
from prism.data.store import read_bars
from prism.strategies import SmaCrossover

pytestmark = pytest.mark.timeout(600)


def finished(client, auth, href: str, seconds: float = 400) -> dict:
    """Poll a job until it is done or failed; return it."""
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(href, headers=auth("viewer"))
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("done", "failed"):
            return job.json()
        assert time.monotonic() < deadline, job.json()
        time.sleep(0.2)


def test_a_backtest_job_ends_with_the_engines_metrics_and_a_bad_one_with_its_reason(
    client, auth, stocked
):
    body = {
        "strategy": "sma_crossover",
        "symbols": ["SPX"],
        "start": "2012-01-01T00:00:00Z",
        "end": "2016-12-31T00:00:00Z",
        "params": {"fast": 10, "slow": 40},
        "allow_gaps": True,
    }
    queued = client.post("/api/v1/research/backtest-jobs", json=body, headers=auth("researcher"))
    assert queued.status_code == 202, queued.text
    job = finished(client, auth, queued.json()["href"])
    assert (job["status"], job["kind"], job["submitted_by"]) == (
        "done",
        "backtest",
        "researcher-user",
    )
    bars = read_bars(stocked, ["SPX"], "2012-01-01", "2016-12-31")
    expected = report(run_backtest(bars, SmaCrossover(fast=10, slow=40), BacktestConfig()), "1d")
    assert job["result"]["bars"] == len(bars)
    assert job["result"]["metrics"]["sharpe"] == float(expected["sharpe"])
    missing = client.post(
        "/api/v1/research/backtest-jobs",
        json={**body, "symbols": ["NOPE"]},
        headers=auth("researcher"),
    )
    failed = finished(client, auth, missing.json()["href"])
    assert failed["status"] == "failed" and "NOPE" in failed["error"]
    listed = client.get("/api/v1/research/jobs", headers=auth("viewer")).json()
    assert {j["job_id"] for j in listed} >= {job["job_id"], failed["job_id"]}
    refused = client.post(
        "/api/v1/research/backtest-jobs",
        json={**body, "strategy": "nope"},
        headers=auth("researcher"),
    )
    assert refused.status_code == 400 and "nope" in refused.json()["detail"]
    unknown = client.get("/api/v1/research/jobs/nothing", headers=auth("viewer"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_a_sweep_job_ranks_the_grid_as_the_library_does(client, auth, stocked):
    body = {
        "strategy": "sma_crossover",
        "grid": ["fast=5,10", "slow=30..50:20"],
        "where": ["fast<slow"],
        "symbols": ["SPX"],
        "start": "2014-01-01T00:00:00Z",
        "end": "2016-12-31T00:00:00Z",
        "allow_gaps": True,
        "top": 3,
    }
    queued = client.post("/api/v1/research/sweeps", json=body, headers=auth("researcher"))
    assert queued.status_code == 202, queued.text
    job = finished(client, auth, queued.json()["href"])
    assert job["status"] == "done", job["error"]
    bars = read_bars(stocked, ["SPX"], "2014-01-01", "2016-12-31")
    combos = expand_grid({"fast": [5, 10], "slow": [30, 50]}, lambda c: c["fast"] < c["slow"])
    config = BacktestConfig(capital=1_000_000.0, commission_bps=1.0, slippage_bps=2.0)
    winner = best(run_sweep(bars, "sma_crossover", combos, config))
    result = job["result"]
    assert result["trials"] == len(combos) == 4
    assert (result["best"]["fast"], result["best"]["slow"]) == (winner["fast"], winner["slow"])
    assert result["best"]["deflated_sharpe"] == pytest.approx(winner["deflated_sharpe"])
    assert len(result["top"]) == 3
    for change in (
        {"grid": ["fast"]},
        {"grid": ["fast=1..1000000000"]},
        {"grid": ["fast=1..1000", "slow=1..1000"]},
        {"where": ["fast<zzz"]},
    ):
        bad = client.post(
            "/api/v1/research/sweeps", json={**body, **change}, headers=auth("researcher")
        )
        assert bad.status_code == 400 and "fast" in bad.json()["detail"], change


def test_a_notebook_run_is_an_mlflow_run_and_a_notebook_sweep_a_parent_run(
    client, auth, api_settings
):
    queued = client.post(
        "/api/v1/research/notebook-runs",
        json={"notebook": "sweep_probe.ipynb", "parameters": {"x": "3"}},
        headers=auth("researcher"),
    )
    swept = client.post(
        "/api/v1/research/notebook-sweeps",
        json={"notebook": "sweep_probe.ipynb", "grid": ["x=2"], "workers": 1, "keep": 0},
        headers=auth("researcher"),
    )
    assert (queued.status_code, swept.status_code) == (202, 202), (queued.text, swept.text)
    job = finished(client, auth, queued.json()["href"])
    assert job["status"] == "done", job["error"]
    store = MlflowClient(api_settings.mlflow_tracking_uri)
    run = store.get_run(job["result"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["oos_sharpe"] == job["result"]["metrics"]["oos_sharpe"] == 0.5 * 3
    sweep = finished(client, auth, swept.json()["href"])
    assert sweep["status"] == "done", sweep["error"]
    parent = store.get_run(sweep["result"]["parent_run_id"])
    assert parent.data.metrics["trials"] == 1.0
    assert [t["oos_sharpe"] for t in sweep["result"]["trials"]] == [0.5 * 2]
    unknown = client.post(
        "/api/v1/research/notebook-runs",
        json={"notebook": "nothing.ipynb"},
        headers=auth("researcher"),
    )
    assert unknown.status_code == 400 and "sweep_probe.ipynb" in unknown.json()["detail"]
    wrong = client.post(
        "/api/v1/research/notebook-runs",
        json={"notebook": "sweep_probe.ipynb", "parameters": {"y": "1"}},
        headers=auth("researcher"),
    )
    assert wrong.status_code == 400 and "y" in wrong.json()["detail"]


def test_jobs_of_a_dead_api_process_are_marked_failed_with_the_reason(engine):
    dead = subprocess.Popen(["true"])
    dead.wait()
    runner = JobRunner(engine, 1)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.api_jobs (job_id, kind, request, status, submitted_by, "
                "host, pid) VALUES ('left', 'backtest', '{}', 'running', 'x', :h, :p), "
                "('mine', 'backtest', '{}', 'running', 'x', :h, :me)"
            ),
            {"h": runner.host, "p": dead.pid, "me": runner.pid},
        )
    assert runner.recover() == 1
    left, mine = runner.get("left"), runner.get("mine")
    runner.shutdown()
    assert left is not None and mine is not None
    assert (left["status"], left["error"]) == ("failed", ABANDONED)
    assert mine["status"] == "running"


def test_a_queued_job_is_cancelled_by_its_submitter_and_never_starts(api_settings, stocked):
    from fastapi.testclient import TestClient

    from prism.api.app import create_app

    app = create_app(api_settings.model_copy(update={"api_job_workers": 1}), stocked)
    keys, jobs = app.state.prism.keys, app.state.prism.extra["jobs"]

    def bearer(subject: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys.issue(subject, role, 5, 'password')[0]}"}

    release = threading.Event()
    body = {"strategy": "sma_crossover", "symbols": ["SPX"], "params": {"fast": 5, "slow": 20}}
    with TestClient(app) as client:
        busy = jobs.submit("backtest", {}, "ops", lambda: {"waited": release.wait(60)})
        accepted = client.post(
            "/api/v1/research/backtest-jobs", json=body, headers=bearer("ann", "researcher")
        )
        assert accepted.status_code == 202, accepted.text
        queued = accepted.json()["job_id"]
        other = client.post(
            f"/api/v1/research/jobs/{queued}/cancel", headers=bearer("bob", "researcher")
        )
        cancel = client.post(
            f"/api/v1/research/jobs/{queued}/cancel", headers=bearer("ann", "researcher")
        )
        again = client.post(
            f"/api/v1/research/jobs/{queued}/cancel", headers=bearer("ann", "researcher")
        )
        running = client.post(f"/api/v1/research/jobs/{busy}/cancel", headers=bearer("x", "admin"))
        release.set()
        viewer = lambda _: bearer("v", "viewer")  # noqa: E731
        probe = finished(client, viewer, f"/api/v1/research/jobs/{busy}")
        # One worker takes jobs in order: once a later one is done, the cancelled one was seen.
        last = jobs.submit("backtest", {}, "ops", lambda: {})
        finished(client, viewer, f"/api/v1/research/jobs/{last}")
        after = client.get(f"/api/v1/research/jobs/{queued}", headers=bearer("v", "viewer"))

    assert other.status_code == 403 and "an admin may cancel it" in other.json()["detail"]
    assert cancel.status_code == 200, cancel.text
    assert (cancel.json()["status"], cancel.json()["error"]) == (
        "failed",
        "cancelled by ann before it started",
    )
    assert again.status_code == 409 and "is failed" in again.json()["detail"]
    assert running.status_code == 409 and "is running" in running.json()["detail"]
    assert probe["status"] == "done"
    assert after.json()["started_at"] is None and after.json()["result"] is None
