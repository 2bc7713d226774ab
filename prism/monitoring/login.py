"""The dashboard's password login, rate-limited per client and on record.

Every failed attempt is written to ``audit.system_events`` as a ``dashboard_login_failed``
warning through ``audit.record_login_failure`` (migration 0011: the one thing the read-only
login may write). The same events are the rate limit's memory, so it holds across Streamlit
sessions, reruns and processes: a client with ``PRISM_DASHBOARD_LOGIN_ATTEMPTS`` failures in
the last ``PRISM_DASHBOARD_LOGIN_WINDOW_SECONDS`` is refused without its password being
compared, and that refusal is recorded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from prism.core.settings import Settings
from prism.monitoring.access import password_matches

FAILED_LOGIN_EVENT = "dashboard_login_failed"


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt gave: whether the visitor is in, and what to tell them if not."""

    accepted: bool
    message: str = ""


def client_label(address: object) -> str:
    """Return the client a login attempt is counted against: its address when the server
    knows it (Streamlit's ``st.context.ip_address``), else ``unknown`` (one shared limit)."""
    return address if isinstance(address, str) and address else "unknown"


def recent_failures(
    engine: Engine, client: str, window_seconds: float, now: datetime | None = None
) -> tuple[int, datetime | None]:
    """Return how many failed logins ``client`` made in the window ending at ``now`` (UTC)
    and the time of the oldest of them."""
    moment = now or datetime.now(UTC)
    with engine.connect() as conn:
        count, oldest = conn.execute(
            text(
                "SELECT count(*), min(time) FROM audit.system_events WHERE event_type = :kind "
                "AND metadata->>'client' = :client AND time > :since AND time <= :now"
            ),
            {
                "kind": FAILED_LOGIN_EVENT,
                "client": client,
                "since": moment - timedelta(seconds=window_seconds),
                "now": moment,
            },
        ).one()
    return int(count), oldest


def record_failure(engine: Engine, client: str, detail: str) -> None:
    """Write one failed login of ``client`` to ``audit.system_events``."""
    with engine.begin() as conn:
        conn.execute(
            text("SELECT audit.record_login_failure(:client, :detail)"),
            {"client": client, "detail": detail},
        )


def attempt_login(
    engine: Engine, settings: Settings, client: str, password: str, now: datetime | None = None
) -> LoginOutcome:
    """Return whether ``password`` lets ``client`` in, refusing a client over its limit of
    failed attempts without comparing; every refusal is recorded."""
    moment = now or datetime.now(UTC)
    window = settings.dashboard_login_window_seconds
    failures, oldest = recent_failures(engine, client, window, moment)
    if failures >= settings.dashboard_login_attempts:
        record_failure(engine, client, "rate limited")
        wait = window if oldest is None else (oldest - moment).total_seconds() + window
        return LoginOutcome(
            False,
            f"Too many failed logins from this client; try again in {max(1, round(wait))} s.",
        )
    if password_matches(settings, password):
        return LoginOutcome(True)
    record_failure(engine, client, "wrong password")
    left = settings.dashboard_login_attempts - failures - 1
    return LoginOutcome(False, f"Wrong password ({left} attempt(s) left before a pause).")
