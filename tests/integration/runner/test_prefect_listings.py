"""Prefect's own tools work against the runner's Prefect server: with the server started the way
``prism runner serve`` starts it (:func:`prism.live.serving.local_prefect_server`), a runner flow
run and the runner's deployments are listed by Prefect's sync client and by the ``prefect`` CLI
(``prefect flow-run ls``, ``prefect deployment ls``), as an operator watching the runner would.

This is what a FastAPI of 0.151 or later breaks: Prefect 3.8.8's server declares its filters'
``limit`` as ``Body(None)`` and those releases refuse the explicit ``null`` the sync client and
the CLI send (HTTP 422), while flow runs themselves still work."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from prism.core.settings import project_root, service_environment
from prism.live.serving import local_prefect_server

DEPLOYMENTS = {"ingest", "trade", "reconcile", "alerts", "daily", "maintenance"}


def prefect_cli(api_url: str, home: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``prefect ARGS`` as a user in another shell would after exporting the API URL the
    runner printed (a wide terminal, so no column of the table is cut)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "COLUMNS": "250",
        }
    )
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), *args],
        env=env,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(420)
def test_prefect_client_and_cli_list_the_runners_flows_runs_and_deployments(
    settings, engine, monkeypatch
):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from runner import flows
    from runner.serve import deployments_to_serve

    home = service_environment(settings)["PREFECT_HOME"]
    with local_prefect_server(settings) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        assert asyncio.run(flows.reconcile()) == []
        for deployment in deployments_to_serve():
            deployment.apply()
        queued = run_deployment("trade_all/trade", timeout=0)

        # the server's scheduler queues the deployments' next runs: the plain listing shows
        # the newest of them (at most 15), and the finished run is one filter away
        listed_queued = prefect_cli(api_url, home, "flow-run", "ls")
        listed_runs = prefect_cli(api_url, home, "flow-run", "ls", "--state", "Completed")
        listed_deployments = prefect_cli(api_url, home, "deployment", "ls")
        for listed in (listed_queued, listed_runs, listed_deployments):
            assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]

        # read after the CLI, so every run it showed is known here (each read by its id: the
        # scheduler queues more upcoming runs than one page of read_flow_runs holds)
        shown = [UUID(m) for m in re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", listed_queued.stdout)]
        with get_client(sync_client=True) as client:
            flow_names = {f.name for f in client.read_flows()}
            completed = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.COMPLETED])
                    )
                )
            )
            known = {run.id for run in map(client.read_flow_run, [*shown, queued.id])}
            deployment_names = {d.name for d in client.read_deployments()}

    assert {"reconcile", "trade_all"} <= flow_names
    assert len(completed) == 1
    assert deployment_names == DEPLOYMENTS

    assert str(completed[0].id) in listed_runs.stdout and "COMPLETED" in listed_runs.stdout
    assert "reconcile" in listed_runs.stdout and "Traceback" not in listed_runs.stderr
    # how many upcoming runs the scheduler has queued by now depends on its loop's timing; what
    # matters is that the listing answers and shows runs the sync client knows, at most 15
    assert 0 < len(shown) <= 15, listed_queued.stdout  # 15: the CLI's default --limit
    assert known == {*shown, queued.id}, listed_queued.stdout
    for flow, name in [
        ("ingest_bars", "ingest"),
        ("trade_all", "trade"),
        ("reconcile", "reconcile"),
        ("deliver_alerts", "alerts"),
        ("daily_report", "daily"),
        ("maintenance", "maintenance"),
    ]:
        assert f"{flow}/{name}" in listed_deployments.stdout, listed_deployments.stdout
