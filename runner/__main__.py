"""``python -m runner [BARS]``: replay the newest bars through ``trade_cycle``, print a summary."""

from __future__ import annotations

import json
import sys

from prism.core.settings import export_service_environment

export_service_environment()

from prism.core.errors import PrismError  # noqa: E402
from runner.flows import replay  # noqa: E402


def main() -> None:
    """Replay the bars and print a one-line JSON summary (errors: one line on stderr, exit 1)."""
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    try:
        summary = replay(bars=bars)
    except PrismError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary.as_dict(), default=str))


if __name__ == "__main__":
    main()
