"""System events: what the platform itself noticed (a data gap, a failed refresh, a restart),
written to ``audit.system_events`` so the dashboard and SQL see them beside the trading audit.

Severity is the database enum ``audit.event_severity``; it is checked here first so a wrong
value raises a :class:`~prism.core.errors.ConfigError` naming the valid ones instead of a driver
error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from prism.core.errors import ConfigError

SEVERITIES = ("info", "warning", "error", "critical")


@dataclass(frozen=True)
class SystemEvent:
    """One row of ``audit.system_events``."""

    id: int
    time: datetime
    event_type: str
    severity: str
    component: str
    message: str
    metadata: dict[str, Any]


_INSERT = text(
    "INSERT INTO audit.system_events (event_type, severity, component, message, metadata) "
    "VALUES (:event_type, CAST(:severity AS audit.event_severity), :component, :message, "
    "CAST(:metadata AS jsonb)) RETURNING id"
)


def check_severity(severity: str) -> str:
    """Return ``severity`` if it is one of :data:`SEVERITIES`, else raise a ConfigError."""
    if severity not in SEVERITIES:
        raise ConfigError(
            f"unknown event severity {severity!r}; use one of {', '.join(SEVERITIES)}"
        )
    return severity


def record_event(
    engine_or_conn: Engine | Connection,
    event_type: str,
    severity: str,
    component: str,
    message: str,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Write one system event and return its id.

    Given a Connection, the row joins that connection's transaction (so an event about a
    rolled-back step disappears with it); given an Engine, it is committed at once.
    ``metadata`` must be JSON-serialisable; dates and other objects are written with ``str``.
    """
    params = {
        "event_type": event_type,
        "severity": check_severity(severity),
        "component": component,
        "message": message,
        "metadata": json.dumps(metadata or {}, default=str),
    }
    if isinstance(engine_or_conn, Connection):
        return int(engine_or_conn.execute(_INSERT, params).scalar_one())
    with engine_or_conn.begin() as conn:
        return int(conn.execute(_INSERT, params).scalar_one())


def recent_events(engine: Engine, limit: int = 50) -> list[SystemEvent]:
    """Return the newest ``limit`` system events, newest first."""
    query = text(
        "SELECT id, time, event_type, CAST(severity AS text) AS severity, component, message, "
        "metadata FROM audit.system_events ORDER BY time DESC, id DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"limit": limit}).mappings().all()
    return [SystemEvent(**dict(row)) for row in rows]
