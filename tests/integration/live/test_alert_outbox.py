"""The alert outbox: a cycle raising an alert only queues it (its sinks slow or down cost the
cycle nothing, under its deployment lock or after), and ``deliver_alerts`` sends it later over
real HTTP to a local webhook: once per sink, retried with its delivery key where a sink failed,
and sent again after a deliverer died between sending and marking, the receiver de-duplicating
by the ``Idempotency-Key`` header."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from prism.core.settings import Settings
from prism.data.store import ingest
from prism.live import cycle, deployments
from prism.live.alerts import deliver_alerts, prune_outbox, raise_alert
from tests.integration.live.test_calendar_staleness import FridayMinutes
from tests.integration.runner_support import CAPITAL, SYMBOLS, FixedSource, loosen_limits
from tests.integration.webhook import Webhook, serve_webhook


@pytest.fixture(scope="module")
def server() -> Iterator[Webhook]:
    yield from serve_webhook()


@pytest.fixture
def hook(server: Webhook) -> Webhook:
    server.clear()
    server.delay = 0.5
    return server


def _closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with(settings: Settings, *urls: str) -> Settings:
    update: dict[str, Any] = {"alert_urls": SecretStr(",".join(urls)), "alert_attempts": 3}
    return settings.model_copy(update={"alert_backoff_seconds": 0.2, **update})


def _outbox(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT o.kind, o.status, o.attempts, o.delivery_key, o.last_error, "
                    "cardinality(o.delivered_to) AS served, e.metadata->'alert' AS alert "
                    "FROM audit.alert_outbox o JOIN audit.system_events e ON e.id = o.event_id "
                    "ORDER BY o.id"
                )
            ).all()
        )


def _make_due(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit.alert_outbox SET next_attempt_at = now()"))


def test_a_slow_and_a_down_sink_cost_the_cycle_nothing_and_the_flow_delivers_later(
    engine, settings, hook
):
    ingest(engine, FridayMinutes())
    loosen_limits(engine, "outbox test")
    deployments.upsert_deployment(engine, deployments.Deployment("minutes", SYMBOLS, "1m", CAPITAL))
    down = f"json://127.0.0.1:{_closed_port()}/down"
    configured = _with(settings, hook.url("slow"), down)
    monday = datetime(2018, 12, 31, 14, 40, tzinfo=UTC)  # ten bars after the open: stale

    report = cycle.run_cycle(engine, configured, "minutes", now=monday, source=FixedSource())

    assert report.outcome == "stale"
    assert hook.received == {}  # nothing went over the network during the cycle
    [queued] = _outbox(engine)
    assert (queued.kind, queued.status, queued.attempts) == ("stale_data", "pending", 0)

    [first] = deliver_alerts(engine, configured)

    assert first.status == "pending" and first.notified  # the slow sink got it; down did not
    [row] = _outbox(engine)
    assert (row.status, row.attempts, row.served) == ("pending", 1, 1)
    assert row.last_error == "json://***: not delivered after 3 attempt(s)"
    assert hook.keys["slow"] == [row.delivery_key]
    assert row.alert["notified"] is True

    assert deliver_alerts(engine, configured) == []  # backing off: not due yet
    _make_due(engine)
    [retried] = deliver_alerts(engine, configured)

    assert retried.status == "pending"
    [row] = _outbox(engine)
    assert (row.attempts, row.served) == (2, 1)
    assert hook.keys["slow"] == [row.delivery_key]  # the sink it reached is not sent again


def test_a_deliverer_killed_between_sending_and_marking_is_redelivered_under_the_same_key(
    engine, settings, hook
):
    configured = _with(settings, hook.url("ok"))
    outbox_id = raise_alert(engine, "reconcile_mismatch", "error", "runner", "2% off", {"x": 1})
    script = (
        "from prism.core.settings import Settings; from prism.db.engine import open_database; "
        "from prism.live.alerts import deliver_alerts; s = Settings(); "
        "deliver_alerts(open_database(s), s)"
    )
    environment = {**os.environ, "PRISM_ALERT_URLS": hook.url("ok")}
    assert environment["PRISM_DATABASE_URL"] == settings.database_url.get_secret_value()
    deliverer = subprocess.Popen([sys.executable, "-c", script], env=environment)

    def kill_the_sender(path: str) -> None:
        hook.before_answer = None
        os.kill(deliverer.pid, signal.SIGKILL)
        deliverer.wait(timeout=30)

    hook.before_answer = kill_the_sender
    assert deliverer.wait(timeout=120) == -signal.SIGKILL
    [crashed] = _outbox(engine)
    assert (crashed.status, crashed.attempts, crashed.served) == ("sending", 1, 0)
    assert deliver_alerts(engine, configured) == []  # its lease has not passed

    [again] = deliver_alerts(engine, configured, lease_seconds=0)

    assert (again.outbox_id, again.status, again.notified) == (outbox_id, "delivered", True)
    [row] = _outbox(engine)
    assert (row.status, row.attempts, row.served, row.last_error) == ("delivered", 2, 1, None)
    assert hook.keys["ok"] == [row.delivery_key, row.delivery_key]  # sent twice...
    assert hook.processed("ok") == [row.delivery_key]  # ...acted on once, by its key
    assert deliver_alerts(engine, configured, lease_seconds=0) == []


def test_maintenance_prunes_settled_outbox_rows_and_keeps_the_alerts(engine, settings, hook):
    """Settled rows older than the keep window go; rows still due, newer ones and the alerts'
    system events stay."""
    sent = _with(settings, hook.url("ok"))
    old, recent = (
        raise_alert(engine, "old", "warning", "test", "x"),
        raise_alert(engine, "recent", "warning", "test", "y"),
    )
    assert all(d.status == "delivered" for d in deliver_alerts(engine, sent))
    waiting = raise_alert(engine, "waiting", "warning", "test", "z")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit.alert_outbox SET delivered_at = now() - interval '31 days', "
                "created_at = now() - interval '31 days' WHERE id = :old OR id = :waiting"
            ),
            {"old": old, "waiting": waiting},
        )

    assert prune_outbox(engine, settings) == 1

    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT id FROM audit.alert_outbox")).scalars())
        kinds = set(conn.execute(text("SELECT event_type FROM audit.system_events")).scalars())
    assert left == {recent, waiting}
    assert {"old", "recent", "waiting"} <= kinds
