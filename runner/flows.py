"""The live runner's Prefect flows: thin orchestration over :mod:`prism`.

- ``trade_cycle(deployment, as_of)``: one cycle of one deployment
  (:func:`prism.live.cycle.run_guarded`: retries while the database is down, then halts and
  alerts). One flow run per cycle, no task per symbol, so Prefect's cost per cycle does not
  grow with the number of symbols.
- ``trade_all``: the cycle of every enabled deployment, each its own task run, so one
  deployment's failure is a failed task and an alert while the others trade.
- ``ingest_bars``: new bars of every enabled deployment's series from their live feeds, and
  gaps healed by backfill (:func:`prism.live.serving.ingest_deployment_bars`).
- ``reconcile``: each enabled deployment's positions against its broker's, each its own task
  run (:func:`prism.live.reconcile.reconcile`; a mismatch halts it).
- ``deliver_alerts``: the alert outbox sent to the alert URLs (the other flows and the cycle
  only queue alerts, so no flow waits on a webhook; :mod:`prism.live.alerts`).
- ``daily_report``: the report notebook executed to HTML
  (:func:`prism.monitoring.reports.run_daily_report`).
- ``maintenance``: rollups refreshed and retention applied (:mod:`prism.db.rollups`).

``replay`` runs ``trade_cycle`` once per bar over the newest stored bars (the demo uses it).

The trading flows (cycles, feeds, reconciliation, alerts) connect as the runner's login
``prism_runner`` (:func:`prism.db.engine.open_runner_database`), which may write only what a
cycle writes; maintenance, reports and the replay's deployment set-up connect as the owner.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from prefect import flow, task
from prefect.states import State
from sqlalchemy import Engine

from prism.core.errors import PrismError
from prism.core.settings import load_settings
from prism.db.engine import open_database, open_runner_database
from prism.live import cycle, deployments
from prism.live.replay import ReplaySummary, replay_times
from prism.live.replay import replay as live_replay

DEFAULT_SYMBOLS = ("SPX", "NDX")


@lru_cache(maxsize=1)
def _engine() -> Engine:
    """The trading flows' engine, logged in as the runner's role."""
    return open_runner_database(load_settings())


@lru_cache(maxsize=1)
def _owner_engine() -> Engine:
    """The engine of maintenance, reports and deployment set-up, logged in as the owner."""
    return open_database(load_settings())


def _alert(kind: str, message: str, metadata: dict[str, Any]) -> None:
    """The runner's one way to raise an error alert from a flow: queued in the outbox
    (:func:`prism.live.alerts.raise_alert`) and sent by :func:`deliver_alerts`."""
    from prism.live.alerts import raise_alert

    raise_alert(_engine(), kind, "error", "runner", message, metadata)


def alert_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook: a failed flow run is an error alert naming the flow, the
    run and the error."""
    metadata = {"flow": flow.name, "flow_run_id": str(flow_run.id)}
    if "deployment" in (flow_run.parameters or {}):
        metadata["deployment"] = flow_run.parameters["deployment"]
    _alert("flow_failed", f"flow {flow.name} run {flow_run.name} failed: {state.message}", metadata)


class DeploymentsFailed(PrismError):
    """Some deployments' task runs failed (each one already alerted); the others completed."""


def each_deployment(work: Any) -> list[Any]:
    """Run task ``work`` once per enabled deployment, one after another, each as its own task
    run whose failure does not stop the next; return the results of those that completed and
    raise :class:`DeploymentsFailed` naming the others once all have run."""
    names = [d.name for d in deployments.list_deployments(_engine(), enabled_only=True)]
    states: list[State[Any]] = [work(deployment=name, return_state=True) for name in names]
    failed = [name for name, state in zip(names, states, strict=True) if not state.is_completed()]
    for name, state in zip(names, states, strict=True):
        if not state.is_completed():
            message = f"{work.name} of deployment {name} failed: {state.message}"
            _alert("task_failed", message, {"task": work.name, "deployment": name})
    if failed:
        raise DeploymentsFailed(
            f"{len(failed)} of {len(names)} deployments failed: {', '.join(failed)} "
            "(each raised its own alert; the others ran)"
        )
    return [state.result() for state in states]


@task(name="trade_deployment", task_run_name="trade {deployment}")
def trade_deployment(deployment: str) -> dict[str, Any]:
    """Run one deployment's cycle on its newest bar."""
    return cycle.run_guarded(_engine(), load_settings(), deployment).as_dict()


@task(
    name="reconcile_deployment",
    task_run_name="reconcile {deployment}",
)
def reconcile_deployment(deployment: str) -> str:
    """Reconcile one deployment with its broker; return what was found."""
    from prism.live.reconcile import reconcile as reconcile_one

    return reconcile_one(_engine(), load_settings(), deployment).describe()


@flow(name="trade_cycle", log_prints=False, on_failure=[alert_failure])
async def trade_cycle(deployment: str, as_of: datetime | None = None) -> dict[str, Any]:
    """Trade ``deployment`` for the bar at ``as_of`` (default: its newest stored bar, judged
    for staleness against the wall clock).

    Declared ``async`` only because Prefect 3.8 joins a sync flow's heartbeat thread on exit,
    which costs up to a second per run (measured: 1.13 s sync, 0.38 s async); the steps
    themselves are ordinary blocking calls.
    """
    report = cycle.run_guarded(_engine(), load_settings(), deployment, as_of=as_of)
    return report.as_dict()


@flow(name="trade_all", log_prints=False, on_failure=[alert_failure])
async def trade_all() -> list[dict[str, Any]]:
    """Run the cycle of every enabled deployment (read from config.strategies at each run, so
    a deployment added or disabled takes effect without redeploying), each as its own task."""
    return each_deployment(trade_deployment)


@flow(name="ingest_bars", log_prints=False, on_failure=[alert_failure])
async def ingest_bars() -> dict[str, int]:
    """Ingest new bars of every enabled deployment's series and heal their gaps."""
    from prism.live.serving import ingest_deployment_bars

    return ingest_deployment_bars(_engine())


@flow(name="reconcile", log_prints=False, on_failure=[alert_failure])
async def reconcile() -> list[str]:
    """Reconcile every enabled deployment with its broker, each as its own task; return one
    line per deployment."""
    return each_deployment(reconcile_deployment)


@flow(name="deliver_alerts", log_prints=False)
async def deliver_alerts() -> dict[str, int]:
    """Send the alert outbox's due rows (:func:`prism.live.alerts.deliver_alerts`: at-least-once,
    each with its delivery key; a failing sink is retried by a later run with backoff); return
    how many rows ended in each status. No ``on_failure`` alert: it would queue behind itself."""
    from prism.live.alerts import deliver_alerts as deliver

    done = deliver(_engine(), load_settings())
    return {status: sum(d.status == status for d in done) for status in {d.status for d in done}}


@flow(name="daily_report", log_prints=False, on_failure=[alert_failure])
async def daily_report(report_date: date | None = None) -> list[str]:
    """Execute the daily report notebook for every enabled deployment; return the HTML paths."""
    from prism.monitoring.reports import run_daily_report

    settings = load_settings()
    day = report_date or datetime.now(UTC).date()
    return [
        str(run_daily_report(settings, day, d.name))
        for d in deployments.list_deployments(_owner_engine(), enabled_only=True)
    ]


@flow(name="maintenance", log_prints=False, on_failure=[alert_failure])
async def maintenance() -> dict[str, int]:
    """Refresh the 1h/1d rollups, apply the retention policies and prune the settled rows of
    the alert outbox; return what each removed."""
    from prism.db.rollups import apply_retention, refresh_rollups
    from prism.live.alerts import prune_outbox

    engine = _owner_engine()
    settings = load_settings()
    refresh_rollups(engine)
    return {
        **apply_retention(engine, settings),
        "alert_outbox": prune_outbox(engine, settings),
    }


def replay(
    bars: int = 60, symbols: list[str] | None = None, alias: str = "champion", progress: bool = True
) -> ReplaySummary:
    """Run :func:`trade_cycle` once per bar, oldest first, over the newest ``bars`` bars of the
    settings' deployment (created with ``symbols`` and the settings' capital if missing).

    Each bar is its own ``trade_cycle`` flow run, as a scheduled live runner would make it.
    Missing bars or a missing ``alias`` stop it before the first run, with one clear error.
    """
    from prism.registry.versions import champion

    settings = load_settings()
    engine = _owner_engine()
    chosen = tuple(symbols or DEFAULT_SYMBOLS)
    deployments.upsert_deployment(
        engine,
        deployments.Deployment(settings.deployment, chosen, "1d", settings.capital, alias),
    )
    times = replay_times(engine, list(chosen), bars)
    champion(settings, alias)
    return live_replay(
        times,
        lambda as_of: asyncio.run(trade_cycle(deployment=settings.deployment, as_of=as_of)),
        "replaying bars through trade_cycle",
        progress,
    )
