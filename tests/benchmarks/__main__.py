"""``python -m tests.benchmarks``: run every benchmark and print a Markdown table of ratios."""

from __future__ import annotations

import os
import platform
import warnings

from prism.core.settings import export_service_environment
from tests.benchmarks.row import HEADER


def main() -> None:
    """Run the benchmarks one after the other and print their figures."""
    export_service_environment()
    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar would split rows
    warnings.simplefilter("ignore")
    from tests.benchmarks import (
        bench_api,
        bench_backtest,
        bench_cli,
        bench_dashboard,
        bench_deep,
        bench_indicators,
        bench_ingest,
        bench_minute,
        bench_research,
        bench_sweep_store,
        bench_timescale,
        bench_trade_cycle,
    )

    suites = [
        bench_cli,
        bench_research,
        bench_ingest,
        bench_backtest,
        bench_minute,
        bench_indicators,
        bench_dashboard,
        bench_sweep_store,
        bench_trade_cycle,
        bench_api,
        bench_timescale,
        bench_deep,
    ]
    notes: list[str] = []
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    print(HEADER)
    for suite in suites:
        for row in suite.run(notes):
            print(row.markdown(), flush=True)
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
