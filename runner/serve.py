"""``python -m runner.serve``: serve every runner flow on its schedule with Prefect.

``prism runner serve`` runs this with ``PREFECT_API_URL`` set to the server it started
(:func:`prism.live.serving.serve_runner`), so this process and every flow-run process under it talk
to that server. Run on its own with ``PREFECT_API_URL`` unset, it starts a local server itself
(:func:`prism.live.serving.local_prefect_server`) before Prefect is imported, and stops it on exit;
in Docker Compose ``PREFECT_API_URL`` points at the compose file's server. SIGINT or SIGTERM
stops it: no new flow runs, running ones get ``PRISM_RUNNER_STOP_SECONDS`` to finish
(:func:`prism.live.serving.serve_deployments`). The schedules are
:func:`runner.schedules.runner_schedules`, shared with ``runner.deploy`` (the work-pool
alternative Docker Compose uses).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from prism.core.settings import export_service_environment, load_settings

export_service_environment()

from prism.core.errors import PrismError  # noqa: E402
from prism.live.serving import local_prefect_server, serve_deployments  # noqa: E402


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


def main() -> None:
    """Serve the flows until SIGINT or SIGTERM. A bad alert URL stops it before anything
    starts (:func:`prism.live.alerts.check_alert_urls`)."""
    from prism.live.alerts import check_alert_urls

    settings = load_settings()
    check_alert_urls(settings)
    with local_prefect_server(settings) as api_url:
        # Prefect reads PREFECT_API_URL once, when first imported: only from here on
        print(
            f"Prefect API at {api_url}; serving the runner's flows. Prefect UI: "
            f"{api_url.removesuffix('/api')} (for `prefect` commands in another shell: "
            f"export PREFECT_API_URL={api_url})",
            file=sys.stderr,
            flush=True,
        )
        ended = serve_deployments(deployments_to_serve(), settings.runner_stop_seconds)
        print(f"runner stopped: {ended}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        main()
    except PrismError as err:
        print(f"prism runner serve: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(0)
