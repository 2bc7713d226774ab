"""``python -m runner.serve``: serve ``trade_cycle`` on a schedule against a Prefect server.

Used by the ``runner`` service of ``docker-compose.yml`` (set ``PREFECT_API_URL``). The cron
defaults to 22:00 UTC on weekdays, after the US close; override with ``PRISM_RUNNER_CRON``.
"""

from __future__ import annotations

import os

from prism.config import export_service_environment

export_service_environment()

from runner.flows import trade_cycle  # noqa: E402

if __name__ == "__main__":
    trade_cycle.serve(name="daily", cron=os.environ.get("PRISM_RUNNER_CRON", "0 22 * * 1-5"))
