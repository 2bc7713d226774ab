"""The runner's schedule: which flow runs under which deployment name, and when.

One list shared by ``python -m runner.serve`` (Prefect's ``serve``) and ``python -m runner.deploy``
(deployments on a work pool, run by a worker), so both paths run the same flows on the same
schedules. Intervals come from the settings (``PRISM_RUNNER_CYCLE_SECONDS``,
``..._INGEST_SECONDS``, ``PRISM_ALERT_DELIVERY_SECONDS``); the daily report runs at 22:30 UTC
on weekdays, maintenance at 03:00 UTC.
"""

from __future__ import annotations

from typing import NamedTuple

from prism.core.settings import Settings


class ScheduledFlow(NamedTuple):
    """One deployment: the flow's attribute in :mod:`runner.flows`, the deployment's name,
    and its schedule (an interval in seconds or a cron string in UTC, exactly one set)."""

    flow: str
    name: str
    interval: float | None = None
    cron: str | None = None


def runner_schedules(settings: Settings) -> list[ScheduledFlow]:
    """Return the runner's deployments (one per flow, not per symbol)."""
    return [
        ScheduledFlow("ingest_bars", "ingest", interval=settings.runner_ingest_seconds),
        ScheduledFlow("trade_all", "trade", interval=settings.runner_cycle_seconds),
        ScheduledFlow("reconcile", "reconcile", interval=settings.runner_cycle_seconds),
        ScheduledFlow("deliver_alerts", "alerts", interval=settings.alert_delivery_seconds),
        ScheduledFlow("daily_report", "daily", cron="30 22 * * 1-5"),
        ScheduledFlow("maintenance", "maintenance", cron="0 3 * * *"),
    ]
