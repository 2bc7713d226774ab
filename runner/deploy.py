"""``python -m runner.deploy [--pool prism]``: register the runner's flows on a Prefect work pool.

The alternative to ``runner.serve`` for a long-lived stack (Docker Compose): this one-shot
creates the process work pool if it is missing and registers the same six deployments on the
same schedules (:func:`runner.schedules.runner_schedules`), their code read from this checkout;
``prefect worker start --pool prism --type process`` then runs them. It needs a Prefect server
(``PREFECT_API_URL``); re-running it updates the deployments in place.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import cast

from prism.core.settings import export_service_environment, load_settings, project_root

export_service_environment()

from prism.core.errors import ConfigError, PrismError  # noqa: E402
from prism.live.serving import ensure_process_pool  # noqa: E402
from runner.schedules import runner_schedules  # noqa: E402

DEFAULT_POOL = "prism"


def deploy_runner(pool: str) -> list[str]:
    """Register every scheduled runner flow on ``pool`` from this checkout's source; return
    one line per deployment: its full name and schedule.

    Each deployment is applied on its own (``RunnerDeployment.apply``), so the first one that
    fails stops the command with its error; ``prefect.deploy`` would only add image building
    (none for a process pool) and report a failure as a row of a table."""
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

    root = project_root()
    described = []
    for item in runner_schedules(load_settings()):
        # called outside an event loop, Prefect's dual sync/async methods run synchronously
        flow = cast(Flow, Flow.from_source(source=root, entrypoint=f"runner/flows.py:{item.flow}"))
        deployment = cast(
            RunnerDeployment,
            flow.to_deployment(name=item.name, interval=item.interval, cron=item.cron),
        )
        deployment.apply(work_pool_name=pool)
        when = (
            f"every {item.interval:g} s" if item.interval is not None else f"cron {item.cron} UTC"
        )
        described.append(f"{flow.name}/{item.name} on pool {pool}: {when}")
    return described


def main(argv: list[str] | None = None) -> None:
    """Create the pool if needed and register the deployments, printing what was registered."""
    parser = argparse.ArgumentParser(prog="python -m runner.deploy", description=__doc__)
    parser.add_argument("--pool", default=DEFAULT_POOL, help="process work pool (default: prism)")
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "PREFECT_API_URL is not set: deployments need a running Prefect server "
            "(or use `prism runner serve`, which starts one)"
        )
    if ensure_process_pool(args.pool):
        print(f"created process work pool {args.pool}")
    for line in deploy_runner(args.pool):
        print(f"registered {line}")


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        main()
    except PrismError as err:
        print(f"prism runner deploy: {err}", file=sys.stderr)
        sys.exit(2)
