"""``python -m runner.serve``: serve every runner flow on its schedule with Prefect's ``serve``.

``prism runner serve`` runs this. With ``PREFECT_API_URL`` unset it first starts a local Prefect
server (its database under the workspace, see :func:`prism.serving.local_prefect_server`) and
stops it on exit; in Docker Compose ``PREFECT_API_URL`` points at the compose file's server.
Intervals come from the settings (``PRISM_RUNNER_CYCLE_SECONDS``, ``..._INGEST_SECONDS``);
the daily report runs at 22:30 UTC on weekdays, maintenance at 03:00 UTC.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

from prism.config import export_service_environment, load_settings

export_service_environment()

from prism.errors import PrismError  # noqa: E402
from prism.serving import local_prefect_server  # noqa: E402


def deployments_to_serve() -> list[Any]:
    """Return the Prefect deployments ``serve`` runs (one per flow, not per symbol)."""
    from runner.flows import daily_report, ingest_bars, maintenance, reconcile, trade_all

    settings = load_settings()
    return [
        ingest_bars.to_deployment(name="ingest", interval=settings.runner_ingest_seconds),
        trade_all.to_deployment(name="trade", interval=settings.runner_cycle_seconds),
        reconcile.to_deployment(name="reconcile", interval=settings.runner_cycle_seconds),
        daily_report.to_deployment(name="daily", cron="30 22 * * 1-5"),
        maintenance.to_deployment(name="maintenance", cron="0 3 * * *"),
    ]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Serve the flows until interrupted (SIGINT or SIGTERM); a local Prefect server is
    started if needed and stopped on the way out. A bad alert URL stops it before anything
    starts (:func:`prism.alerts.check_alert_urls`)."""
    from prefect import serve

    from prism.alerts import check_alert_urls

    settings = load_settings()
    check_alert_urls(settings)
    signal.signal(signal.SIGTERM, _stop)
    with local_prefect_server(settings) as api_url:
        print(f"Prefect API at {api_url}; serving the runner's flows", file=sys.stderr)
        serve(*deployments_to_serve(), pause_on_shutdown=False)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        main()
    except PrismError as err:
        print(f"prism runner serve: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(0)
