"""``python -m runner [BARS]``: replay the newest bars through ``trade_cycle`` and print a summary."""

from __future__ import annotations

import json
import sys

from prism.config import export_service_environment

export_service_environment()

from runner.flows import replay  # noqa: E402


def main() -> None:
    """Replay the bars and print one JSON line per cycle-free summary."""
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    reports = replay(bars=bars)
    summary = {
        "bars": len(reports),
        "orders": sum(r["orders"] for r in reports),
        "fills": sum(r["fills"] for r in reports),
        "final_equity": reports[-1]["equity"] if reports else None,
        "model_version": reports[-1]["model_version"] if reports else None,
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
