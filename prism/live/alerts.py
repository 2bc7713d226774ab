"""Alerts: every one is written to ``audit.system_events``; some also go out through apprise.

An alert is keyed by its kind and the deployment and symbol in its metadata. Within
``settings.alert_window_seconds`` an alert whose key already went out is recorded but not sent
again (de-duplication), and no more than ``settings.alert_max_per_window`` alerts go out in all
(rate limit; a critical alert is exempt, so a circuit breaker is never muted by a flood of
warnings). Both rules read what went out from ``audit.system_events`` itself, so they hold
across processes and restarts. The check and the event are written together under a
PostgreSQL advisory lock, the event marked ``"sending": true`` (which counts as sent), and the
notification goes out after that transaction, so a slow or failing webhook never holds the lock
or other alerts up; the event is then updated with the outcome. A process killed while sending
leaves the alert counted as sent for its window: at most once, never twice.

Each apprise URL (``settings.alert_urls``: Telegram, e-mail, Slack, Discord, a JSON webhook…)
is tried ``settings.alert_attempts`` times with exponential backoff (tenacity); one URL failing
does not resend to the others. The event's ``metadata["alert"]`` says what happened::

    {"key": "deployment=demo", "notified": true, "suppressed": null,
     "deliveries": [{"url": "json://***", "attempts": 1, "delivered": true}]}
"""

from __future__ import annotations

import json
from typing import Any

import apprise
from sqlalchemy import Connection, Engine, text
from tenacity import RetryError, Retrying, retry_if_result, stop_after_attempt, wait_exponential

from prism.core.errors import ConfigError
from prism.core.events import check_severity, record_event
from prism.core.settings import Settings

_LOCK = 0x5052_4953_4D41  # "PRISMA": one advisory lock for every alert check-then-send
_NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "error": apprise.NotifyType.FAILURE,
    "critical": apprise.NotifyType.FAILURE,
}
_SENT_SINCE = text(
    "SELECT count(*) FILTER (WHERE event_type = :kind AND metadata->'alert'->>'key' = :key), "
    "count(*) FROM audit.system_events WHERE time > now() - make_interval(secs => :window) "
    "AND (metadata->'alert'->>'notified' = 'true' OR metadata->'alert'->>'sending' = 'true')"
)
_OUTCOME = text(
    "UPDATE audit.system_events SET metadata = jsonb_set(metadata, '{alert}', "
    "CAST(:outcome AS jsonb)) WHERE id = :id"
)


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


def send_alert(
    engine: Engine,
    settings: Settings,
    kind: str,
    severity: str,
    component: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Record an alert as a system event and notify every alert URL; return whether one got it.

    ``kind`` is the event type (``fill``, ``risk_breach``, ``circuit_breaker``, ``stale_data``,
    ``reconcile_mismatch``, ``flow_failed``…); ``severity`` one of info, warning, error,
    critical. Returns False when no URL is configured, when the alert was de-duplicated or
    rate-limited, or when every URL failed after its retries. A URL apprise does not
    understand is skipped and named (scheme only) in the event, so a typo in one URL never
    silences the others or the caller; :func:`check_alert_urls` refuses it at start-up.
    """
    check_severity(severity)
    metadata = dict(metadata or {})
    clients = {url: _client(url) for url in alert_urls(settings)}
    invalid = [_public(url) for url, client in clients.items() if client is None]
    urls = [url for url, client in clients.items() if client is not None]
    key = alert_key(metadata)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _LOCK})
        suppressed = _suppressed(conn, settings, kind, key, severity) if urls else "no alert URLs"
        outcome: dict[str, Any] = {"key": key, "notified": False, "suppressed": suppressed}
        if invalid:
            outcome["invalid_urls"] = invalid
        pending = {**outcome, "sending": True} if suppressed is None else outcome
        event_id = record_event(
            conn, kind, severity, component, message, {**metadata, "alert": pending}
        )
    if suppressed is not None:
        return False
    valid = [c for c in clients.values() if c is not None]
    deliveries = _notify(valid, settings, kind, severity, component, message, key)
    outcome["deliveries"] = [
        {"url": _public(url), "attempts": attempts, "delivered": delivered}
        for url, (attempts, delivered) in zip(urls, deliveries, strict=True)
    ]
    outcome["notified"] = any(delivered for _, delivered in deliveries)
    with engine.begin() as conn:
        conn.execute(_OUTCOME, {"outcome": json.dumps(outcome), "id": event_id})
    return bool(outcome["notified"])


def _suppressed(
    conn: Connection, settings: Settings, kind: str, key: str, severity: str
) -> str | None:
    same, total = conn.execute(
        _SENT_SINCE, {"kind": kind, "key": key, "window": settings.alert_window_seconds}
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


def _notify(
    clients: list[apprise.Apprise],
    settings: Settings,
    kind: str,
    severity: str,
    component: str,
    message: str,
    key: str,
) -> list[tuple[int, bool]]:
    """Send to each client with retries; return (attempts, delivered) per client."""
    title = f"[{severity.upper()}] Prism {kind}" + (f" ({key})" if key else "")
    body = f"{message}\n\ncomponent: {component}"
    deliveries: list[tuple[int, bool]] = []
    for client in clients:
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
        deliveries.append((int(retrying.statistics.get("attempt_number", 1)), delivered))
    return deliveries
