"""Readiness (``/ready``): each dependency checked by name, all at once, each within a deadline.

Checks: the database (through the read-only login), the MLflow store, the Prefect API (when
``PREFECT_API_URL`` names one), the broker of every enabled deployment, feed staleness (a live
feed an enabled deployment trades, past its error threshold, judged from its newest bar) and
the alert outbox's undelivered rows. Each runs in a daemon thread; one that has not answered by
``api_ready_timeout`` is reported failed ("no answer within N s") and left behind, so a hung
dependency never holds the answer up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, text

from prism.core.settings import Settings
from prism.live.deployments import Deployment, list_deployments

Probe = Callable[[], str]
"""A check: returns a short note when the dependency is fine, raises when it is not."""


@dataclass(frozen=True)
class Check:
    """One dependency's outcome."""

    name: str
    ok: bool
    reason: str
    seconds: float


def _database(engine: Engine) -> Probe:
    def probe() -> str:
        with engine.connect() as conn:
            role = conn.execute(text("SELECT current_user")).scalar()
        return f"answers (as {role})"

    return probe


def _mlflow(settings: Settings) -> Probe:
    def probe() -> str:
        from prism.monitoring.mlflow_reader import client

        store = client(settings)
        if store is None:
            return "no store yet (nothing tracked)"
        store.search_experiments(max_results=1)
        return "store opens"

    return probe


def _prefect(timeout: float) -> Probe:
    def probe() -> str:
        url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
        if not url:
            return "PREFECT_API_URL unset: flows start a temporary local server"
        answer = httpx.get(f"{url}/health", timeout=timeout)
        answer.raise_for_status()
        return f"{url} answers"

    return probe


def _broker(engine: Engine, settings: Settings, deployment: Deployment) -> Probe:
    def probe() -> str:
        cash = deployment.open_broker(engine, settings).cash()
        return f"{deployment.broker} answers (cash {float(cash):,.2f})"

    return probe


def _feeds(engine: Engine) -> Probe:
    def probe() -> str:
        from prism.data.health import feed_staleness

        wanted: dict[str, set[str]] = {}
        for deployment in list_deployments(engine, enabled_only=True):
            wanted.setdefault(deployment.timeframe, set()).update(deployment.symbols)
        statuses = [
            status
            for timeframe, symbols in wanted.items()
            for status in feed_staleness(engine, sorted(symbols), timeframe)
        ]
        stale = [
            f"{s.symbol} {s.timeframe} silent {s.silent_for}"
            for s in statuses
            if s.staleness == "error"
        ]
        if stale:
            raise RuntimeError("stale feeds: " + "; ".join(stale))
        return f"{len(statuses)} traded series, none stale"

    return probe


def _outbox(engine: Engine, most: int) -> Probe:
    def probe() -> str:
        with engine.connect() as conn:
            depth = int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM audit.alert_outbox "
                        "WHERE status IN ('pending', 'sending')"
                    )
                ).scalar_one()
            )
        if depth > most:
            raise RuntimeError(f"{depth} undelivered alerts (more than {most})")
        return f"{depth} undelivered alerts"

    return probe


def probes(engine: Engine, settings: Settings) -> dict[str, Probe]:
    """Return the checks every readiness answer has, by name."""
    return {
        "database": _database(engine),
        "mlflow": _mlflow(settings),
        "prefect": _prefect(settings.api_ready_timeout),
        "feeds": _feeds(engine),
        "alert_outbox": _outbox(engine, settings.api_ready_outbox_max),
    }


class _Runs:
    """Checks running in daemon threads against one deadline."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.outcomes: dict[str, Check] = {}
        self.threads: dict[str, threading.Thread] = {}

    def start(self, name: str, probe: Probe) -> None:
        def run() -> None:
            began = time.monotonic()
            try:
                note = probe()
                outcome = Check(name, True, note, time.monotonic() - began)
            except Exception as err:
                said = " ".join(str(err).split())[:300]
                reason = f"{type(err).__name__}: {said}" if said else type(err).__name__
                outcome = Check(name, False, reason, time.monotonic() - began)
            self.outcomes[name] = outcome

        thread = threading.Thread(target=run, name=f"ready-{name}", daemon=True)
        self.threads[name] = thread
        thread.start()

    def wait(self, name: str) -> Check:
        self.threads[name].join(max(0.0, self.deadline - time.monotonic()))
        late = Check(
            name, False, f"no answer within {self.timeout:g} s", time.monotonic() - self.started
        )
        return self.outcomes.get(name) or late


def readiness(engine: Engine, settings: Settings) -> list[Check]:
    """Check every dependency at once within ``settings.api_ready_timeout``: the fixed checks,
    then ``broker:<name>`` for each enabled deployment (listed from the database)."""
    runs = _Runs(settings.api_ready_timeout)
    checks = probes(engine, settings)
    for name, probe in checks.items():
        runs.start(name, probe)
    listing: list[Deployment] = []

    def enabled() -> str:
        listing.extend(list_deployments(engine, enabled_only=True))
        return f"{len(listing)} enabled"

    runs.start("deployments", enabled)
    listed = runs.wait("deployments")
    traded = list(listing) if listed.ok else []
    brokers = [f"broker:{d.name}" for d in traded]
    for deployment in traded:
        runs.start(f"broker:{deployment.name}", _broker(engine, settings, deployment))
    found = [runs.wait(name) for name in (*checks, *brokers)]
    return found if listed.ok else [*found, listed]
