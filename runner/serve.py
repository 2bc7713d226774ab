"""``python -m runner.serve``: serve every runner flow on its schedule with Prefect's ``serve``.

``prism runner serve`` runs this. With ``PREFECT_API_URL`` unset it first starts a local Prefect
server (its database under the workspace, see :func:`prism.live.serving.local_prefect_server`) and
stops it on exit; in Docker Compose ``PREFECT_API_URL`` points at the compose file's server.
The schedules are :func:`runner.schedules.runner_schedules`, shared with ``runner.deploy`` (the
work-pool alternative Docker Compose uses).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

from prism.core.settings import export_service_environment, load_settings

export_service_environment()

from prism.core.errors import PrismError  # noqa: E402
from prism.live.serving import local_prefect_server  # noqa: E402


def deployments_to_serve() -> list[Any]:
    """Return the Prefect deployments ``serve`` runs (one per flow, not per symbol), on the
    schedules shared with ``runner.deploy`` (:func:`runner.schedules.runner_schedules`)."""
    from runner import flows
    from runner.schedules import runner_schedules

    return [
        getattr(flows, item.flow).to_deployment(
            name=item.name, interval=item.interval, cron=item.cron
        )
        for item in runner_schedules(load_settings())
    ]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Serve the flows until interrupted (SIGINT or SIGTERM); a local Prefect server is
    started if needed and stopped on the way out. A bad alert URL stops it before anything
    starts (:func:`prism.live.alerts.check_alert_urls`)."""
    from prefect import serve

    from prism.live.alerts import check_alert_urls

    settings = load_settings()
    check_alert_urls(settings)
    signal.signal(signal.SIGTERM, _stop)
    with local_prefect_server(settings) as api_url:
        print(
            f"Prefect API at {api_url}; serving the runner's flows. Prefect UI: "
            f"{api_url.removesuffix('/api')} (for `prefect` commands in another shell: "
            f"export PREFECT_API_URL={api_url})",
            file=sys.stderr,
        )
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
