"""Alerts: every one is written to ``audit.system_events`` and ``audit.alert_outbox`` in the
caller's transaction; the ``deliver_alerts`` flow sends them through apprise afterwards.

Raising an alert (:func:`enqueue_alert`) never touches the network, so a cycle holding its
deployment's advisory lock is never delayed or failed by a slow or unreachable sink, and an alert
about a step that rolls back disappears with it. :func:`deliver_alerts` sends what is due,
at-least-once: it claims a row (status ``sending``), sends it outside any lock or transaction,
then marks it. A deliverer killed between sending and marking leaves the row ``sending``; once its
lease has passed another run sends it again with the same ``delivery_key``, passed to sinks that
take headers (``json://``, ``xml://``, ``form://``) as an ``Idempotency-Key`` header, so the
receiver can drop the repeat. A sink already served is recorded (by digest) and not sent again.

An alert is keyed by its kind and the deployment and symbol in its metadata. Within
``settings.alert_window_seconds`` an alert whose key already went out is recorded but not sent
again (de-duplication), and no more than ``settings.alert_max_per_window`` alerts go out in all
(rate limit; a critical alert is exempt, so a circuit breaker is never muted by a flood of
warnings). Both rules read what went out from ``audit.system_events`` and are judged when a row is
claimed, under a PostgreSQL advisory lock, so they hold across processes and restarts.

Each apprise URL (``settings.alert_urls``: Telegram, e-mail, Slack, Discord, a JSON webhook…)
is tried ``settings.alert_attempts`` times per delivery round with exponential backoff (tenacity);
one URL failing does not resend to the others. A round in which a URL failed is retried by a
later run after ``alert_backoff_seconds × 2^rounds``, up to ``max_rounds`` rounds, then the row is
``failed`` (``last_error`` says which URLs). The event's ``metadata["alert"]`` says what
happened::

    {"key": "deployment=demo", "outbox_id": 7, "notified": true, "suppressed": null,
     "deliveries": [{"url": "json://***", "attempts": 1, "delivered": true}]}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import apprise
from sqlalchemy import Connection, Engine, text
from tenacity import RetryError, Retrying, retry_if_result, stop_after_attempt, wait_exponential

from prism.core.errors import ConfigError
from prism.core.events import check_severity, record_event
from prism.core.settings import Settings

_LOCK = 0x5052_4953_4D41  # "PRISMA": one advisory lock for every alert claim
_KEYED_SCHEMES = ("json", "jsons", "xml", "xmls", "form", "forms")
DELIVERY_KEY_HEADER = "Idempotency-Key"
_NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "error": apprise.NotifyType.FAILURE,
    "critical": apprise.NotifyType.FAILURE,
}
_SENT_SINCE = text(
    "SELECT count(*) FILTER (WHERE event_type = :kind AND metadata->'alert'->>'key' = :key), "
    "count(*) FROM audit.system_events WHERE time > now() - make_interval(secs => :window) "
    "AND id <> :own "
    "AND (metadata->'alert'->>'notified' = 'true' OR metadata->'alert'->>'sending' = 'true')"
)
_OUTCOME = text(
    "UPDATE audit.system_events SET metadata = jsonb_set(metadata, '{alert}', "
    "CAST(:outcome AS jsonb)) WHERE id = :id"
)
_ENQUEUE = text(
    "INSERT INTO audit.alert_outbox (event_id, kind, severity, component, message, key) "
    "VALUES (:event_id, :kind, :severity, :component, :message, :key) RETURNING id"
)
_CLAIM = text(
    "SELECT id, event_id, kind, severity, component, message, key, delivery_key, attempts, "
    "delivered_to FROM audit.alert_outbox "
    "WHERE (CAST(:only AS bigint) IS NULL OR id = :only) AND id <> ALL(:seen) AND ("
    "(status = 'pending' AND next_attempt_at <= now()) "
    "OR (status = 'sending' AND claimed_at <= now() - make_interval(secs => :lease))) "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_MARK = text(
    "UPDATE audit.alert_outbox SET status = :status, attempts = :attempts, "
    "claimed_at = CASE WHEN :status = 'sending' THEN now() ELSE claimed_at END, "
    "delivered_at = CASE WHEN :status = 'delivered' THEN now() ELSE delivered_at END, "
    "next_attempt_at = now() + make_interval(secs => :wait), last_error = :error WHERE id = :id"
)
_SERVED = text(
    "UPDATE audit.alert_outbox SET delivered_to = array_append(delivered_to, :sink) "
    "WHERE id = :id AND NOT (:sink = ANY(delivered_to))"
)


@dataclass(frozen=True)
class Delivery:
    """What one delivery run did with one outbox row: its new ``status`` (``delivered``,
    ``suppressed``, ``pending`` for a retry, ``failed`` after the last round) and whether any
    alert URL got it."""

    outbox_id: int
    status: str
    notified: bool


def alert_urls(settings: Settings) -> list[str]:
    """Return the apprise URLs alerts go to (empty when none are configured)."""
    if settings.alert_urls is None:
        return []
    return [url.strip() for url in settings.alert_urls.get_secret_value().split(",") if url.strip()]


def alert_key(metadata: dict[str, Any]) -> str:
    """Return the de-duplication key of an alert: its deployment and symbol, if it names them."""
    return ",".join(
        f"{name}={metadata[name]}" for name in ("deployment", "symbol") if name in metadata
    )


def enqueue_alert(
    conn: Connection,
    kind: str,
    severity: str,
    component: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Record an alert as a system event and queue it in ``audit.alert_outbox``, both in
    ``conn``'s transaction (so they commit or roll back with the caller's writes); return the
    outbox row's id. Nothing is sent: :func:`deliver_alerts` does that later, outside any lock.

    ``kind`` is the event type (``fill``, ``risk_breach``, ``circuit_breaker``, ``stale_data``,
    ``reconcile_mismatch``, ``flow_failed``…); ``severity`` one of info, warning, error,
    critical."""
    check_severity(severity)
    metadata = dict(metadata or {})
    key = alert_key(metadata)
    queued = {"key": key, "notified": False, "suppressed": None, "queued": True}
    event_id = record_event(conn, kind, severity, component, message, {**metadata, "alert": queued})
    params = {"event_id": event_id, "kind": kind, "severity": severity, "component": component}
    return int(conn.execute(_ENQUEUE, {**params, "message": message, "key": key}).scalar_one())


def raise_alert(
    engine: Engine,
    kind: str,
    severity: str,
    component: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> int:
    """:func:`enqueue_alert` in a transaction of its own; return the outbox row's id."""
    with engine.begin() as conn:
        return enqueue_alert(conn, kind, severity, component, message, metadata)


def send_alert(
    engine: Engine,
    settings: Settings,
    kind: str,
    severity: str,
    component: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Raise an alert and deliver it now; return whether an alert URL got it. For callers that
    hold no lock (``prism alerts test``); the runner queues with :func:`enqueue_alert`.

    Returns False when no URL is configured, when the alert was de-duplicated or
    rate-limited, or when every URL failed after its retries (the row then stays queued for
    the delivery flow's next round). A URL apprise does not understand is skipped and named
    (scheme only) in the event, so a typo in one URL never silences the others or the caller;
    :func:`check_alert_urls` refuses it at start-up.
    """
    outbox_id = raise_alert(engine, kind, severity, component, message, metadata)
    return any(d.notified for d in deliver_alerts(engine, settings, only=outbox_id))


def deliver_alerts(
    engine: Engine,
    settings: Settings,
    *,
    only: int | None = None,
    lease_seconds: float = 120.0,
    max_rounds: int = 5,
    limit: int = 200,
) -> list[Delivery]:
    """Send every due outbox row (or just row ``only``) to the alert URLs, oldest first, each at
    most once per run; return what became of each.

    Due: ``pending`` with ``next_attempt_at`` passed, or ``sending`` claimed more than
    ``lease_seconds`` ago (its deliverer died between sending and marking: sent again, same
    delivery key). Several deliverers may run at once: a row is claimed under the alert lock
    and ``FOR UPDATE SKIP LOCKED``, and the network is used only after that commits."""
    clients = {url: _client(url) for url in alert_urls(settings)}
    invalid = [_public(url) for url, client in clients.items() if client is None]
    valid = {url: client for url, client in clients.items() if client is not None}
    done: list[Delivery] = []
    while len(done) < limit:
        claimed = _claim(engine, settings, bool(valid), invalid, only, lease_seconds, done)
        if claimed is None:
            break
        if isinstance(claimed, Delivery):
            done.append(claimed)
            continue
        row, outcome = claimed
        done.append(_send(engine, settings, valid, row, outcome, max_rounds))
    return done


def prune_outbox(engine: Engine, settings: Settings) -> int:
    """Delete the outbox rows settled (``delivered``, ``suppressed`` or ``failed``) more than
    ``settings.alert_outbox_keep_days`` ago; return how many. The outbox is a queue, not the
    record: each alert and its outcome stay in ``audit.system_events``, and de-duplication and
    the rate limit read those, so pruning changes no delivery decision."""
    with engine.begin() as conn:
        deleted = conn.execute(
            text(
                "DELETE FROM audit.alert_outbox WHERE status IN ('delivered', 'suppressed', "
                "'failed') AND coalesce(delivered_at, next_attempt_at) "
                "< now() - make_interval(secs => :keep)"
            ),
            {"keep": settings.alert_outbox_keep_days * 86_400},
        )
    return int(deleted.rowcount or 0)


def _claim(
    engine: Engine,
    settings: Settings,
    has_urls: bool,
    invalid: list[str],
    only: int | None,
    lease_seconds: float,
    done: list[Delivery],
) -> Delivery | tuple[Any, dict[str, Any]] | None:
    """Claim the next due row: judge de-duplication and the rate limit, and either mark it
    ``suppressed`` (returned as a Delivery) or ``sending`` (returned with its outcome so far)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _LOCK})
        seen = [d.outbox_id for d in done]
        row = conn.execute(_CLAIM, {"only": only, "seen": seen, "lease": lease_seconds}).first()
        if row is None:
            return None
        suppressed = (
            _suppressed(conn, settings, row.kind, row.key, row.severity, row.event_id)
            if has_urls
            else "no alert URLs"
        )
        outcome: dict[str, Any] = {"key": row.key, "notified": False, "suppressed": suppressed}
        if invalid:
            outcome["invalid_urls"] = invalid
        status = "sending" if suppressed is None else "suppressed"
        attempts = row.attempts + (1 if suppressed is None else 0)
        conn.execute(
            _MARK, {"status": status, "attempts": attempts, "wait": 0, "error": None, "id": row.id}
        )
        pending = {**outcome, "sending": True} if suppressed is None else outcome
        conn.execute(_OUTCOME, {"outcome": json.dumps(pending), "id": row.event_id})
    if suppressed is not None:
        return Delivery(row.id, "suppressed", False)
    return row, outcome


def _send(
    engine: Engine,
    settings: Settings,
    clients: dict[str, apprise.Apprise],
    row: Any,
    outcome: dict[str, Any],
    max_rounds: int,
) -> Delivery:
    """Send a claimed row to each URL it has not reached yet, then mark it."""
    title = f"[{row.severity.upper()}] Prism {row.kind}" + (f" ({row.key})" if row.key else "")
    body = f"{row.message}\n\ncomponent: {row.component}"
    deliveries = []
    for url, plain in clients.items():
        sink = _digest(url)
        if sink in row.delivered_to:
            deliveries.append({"url": _public(url), "attempts": 0, "delivered": True})
            continue
        client = _client(_keyed(url, row.delivery_key)) or plain
        attempts, delivered = _notify(client, settings, row.severity, title, body)
        if delivered:
            with engine.begin() as conn:
                conn.execute(_SERVED, {"sink": sink, "id": row.id})
        deliveries.append({"url": _public(url), "attempts": attempts, "delivered": delivered})
    failed = [d for d in deliveries if not d["delivered"]]
    outcome["deliveries"] = deliveries
    outcome["notified"] = any(d["delivered"] for d in deliveries)
    rounds = row.attempts + 1  # row was read before its claim counted this round
    status = "delivered" if not failed else "failed" if rounds >= max_rounds else "pending"
    error = "; ".join(f"{d['url']}: not delivered after {d['attempts']} attempt(s)" for d in failed)
    wait = settings.alert_backoff_seconds * 2**rounds if failed else 0
    with engine.begin() as conn:
        conn.execute(
            _MARK,
            {
                "status": status,
                "attempts": rounds,
                "wait": wait,
                "error": error or None,
                "id": row.id,
            },
        )
        conn.execute(_OUTCOME, {"outcome": json.dumps(outcome), "id": row.event_id})
    return Delivery(row.id, status, bool(outcome["notified"]))


def _suppressed(
    conn: Connection, settings: Settings, kind: str, key: str, severity: str, own: int
) -> str | None:
    same, total = conn.execute(
        _SENT_SINCE,
        {"kind": kind, "key": key, "window": settings.alert_window_seconds, "own": own},
    ).one()
    if same:
        return "duplicate"
    if total >= settings.alert_max_per_window and severity != "critical":
        return "rate_limited"
    return None


def check_alert_urls(settings: Settings) -> None:
    """Raise a ConfigError naming (by scheme) every alert URL apprise does not understand."""
    invalid = [_public(url) for url in alert_urls(settings) if _client(url) is None]
    if invalid:
        raise ConfigError(
            f"alert URL {', '.join(invalid)} is not one apprise understands; fix "
            "PRISM_ALERT_URLS (apprise's services: tgram://, mailto://, slack://, discord://, "
            "json://, …)"
        )


def _client(url: str) -> apprise.Apprise | None:
    client = apprise.Apprise()
    return client if client.add(url) else None


def _public(url: str) -> str:
    return f"{url.split('://', 1)[0]}://***"


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _keyed(url: str, delivery_key: str) -> str:
    """Return ``url`` sending the delivery key as an ``Idempotency-Key`` header, for the apprise
    services that take custom headers (``+Name=value``); any other URL unchanged."""
    if url.split("://", 1)[0].lower() not in _KEYED_SCHEMES:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}+{DELIVERY_KEY_HEADER}={quote(delivery_key)}"


def _notify(
    client: apprise.Apprise, settings: Settings, severity: str, title: str, body: str
) -> tuple[int, bool]:
    """Send to one client with retries; return (attempts, delivered)."""
    retrying = Retrying(
        stop=stop_after_attempt(max(1, settings.alert_attempts)),
        wait=wait_exponential(multiplier=settings.alert_backoff_seconds),
        retry=retry_if_result(lambda delivered: delivered is not True),
    )
    try:
        retrying(client.notify, body=body, title=title, notify_type=_NOTIFY_TYPES[severity])
        delivered = True
    except RetryError:
        delivered = False
    return int(retrying.statistics.get("attempt_number", 1)), delivered
