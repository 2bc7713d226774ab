"""Which role each route needs: one table, so a route without a rule is refused at start-up
(and by the test that walks every route) instead of being open by accident.

``PUBLIC`` routes need no token: the login endpoints, liveness/readiness and the Prometheus
scrape. Stream channels have their own table, checked when a client subscribes.
"""

from __future__ import annotations

from prism.core.errors import ConfigError

PUBLIC = "public"

ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("POST", "/api/v1/auth/api-key"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/auth/me"): "viewer",
    ("GET", "/api/v1/data/symbols"): "viewer",
    ("GET", "/api/v1/data/bars/{symbol}"): "viewer",
    ("GET", "/api/v1/data/gaps"): "viewer",
    ("GET", "/api/v1/data/quarantine"): "viewer",
    ("GET", "/api/v1/data/status"): "viewer",
    ("GET", "/api/v1/data/indicators/{symbol}"): "viewer",
    ("GET", "/api/v1/data/features/{symbol}"): "viewer",
    ("POST", "/api/v1/data/ingest"): "trader",
    ("GET", "/api/v1/research/strategies"): "viewer",
    ("GET", "/api/v1/research/runs"): "viewer",
    ("GET", "/api/v1/research/runs/{run_id}"): "viewer",
    ("POST", "/api/v1/research/backtests"): "researcher",
    ("POST", "/api/v1/research/backtest-jobs"): "researcher",
    ("POST", "/api/v1/research/notebook-runs"): "researcher",
    ("POST", "/api/v1/research/sweeps"): "researcher",
    ("POST", "/api/v1/research/notebook-sweeps"): "researcher",
    ("GET", "/api/v1/research/jobs"): "viewer",
    ("GET", "/api/v1/research/jobs/{job_id}"): "viewer",
    ("GET", "/api/v1/registry/versions"): "viewer",
    ("GET", "/api/v1/registry/versions/{version}"): "viewer",
    ("POST", "/api/v1/registry/promotions"): "approver",
    ("POST", "/api/v1/registry/rollbacks"): "approver",
    ("GET", "/api/v1/runner/deployments"): "viewer",
    ("POST", "/api/v1/runner/deployments"): "trader",
    ("GET", "/api/v1/runner/deployments/{name}/drift"): "viewer",
    ("POST", "/api/v1/runner/deployments/{name}/halt"): "trader",
    ("POST", "/api/v1/runner/deployments/{name}/resume"): "trader",
    ("GET", "/api/v1/runner/limits"): "viewer",
    ("PUT", "/api/v1/runner/limits/{key}"): "approver",
    ("GET", "/api/v1/runner/orders"): "viewer",
    ("GET", "/api/v1/runner/orders/{client_order_id}/lineage"): "viewer",
    ("GET", "/api/v1/runner/fills"): "viewer",
    ("GET", "/api/v1/runner/positions"): "viewer",
    ("GET", "/api/v1/runner/risk/{deployment}"): "viewer",
    ("GET", "/api/v1/events"): "admin",
    ("GET", "/api/v1/admin/users"): "admin",
    ("POST", "/api/v1/admin/users"): "admin",
    ("POST", "/api/v1/admin/users/{username}/disable"): "admin",
    ("GET", "/api/v1/admin/keys"): "admin",
    ("POST", "/api/v1/admin/keys"): "admin",
    ("DELETE", "/api/v1/admin/keys/{key_id}"): "admin",
    ("GET", "/api/v1/stream/sse"): "viewer",
    ("WS", "/api/v1/stream"): "viewer",
}
"""``(method, path template) -> lowest role`` (``WS`` for the WebSocket)."""

CHANNEL_ROLES: dict[str, str] = {
    "bars": "viewer",
    "orders": "viewer",
    "fills": "viewer",
    "alerts": "viewer",
    "events": "admin",
}
"""Stream channel -> lowest role that may subscribe (``events`` carries the audit trail)."""


def rule_for(method: str, path: str) -> str:
    """Return the role ``method path`` needs, or raise a ConfigError for a route without one."""
    try:
        return ROUTE_ROLES[(method, path)]
    except KeyError:
        raise ConfigError(f"API route {method} {path} has no role in ROUTE_ROLES") from None
