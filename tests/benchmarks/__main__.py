"""``python -m tests.benchmarks``: run every benchmark and print a Markdown table of ratios."""

from __future__ import annotations

import platform
import warnings

from prism.config import export_service_environment


def main() -> None:
    """Run the benchmarks one after the other and print their figures."""
    export_service_environment()
    warnings.simplefilter("ignore")
    from tests.benchmarks import bench_backtest, bench_indicators, bench_ingest

    suites = {
        "executemany INSERT ON CONFLICT, 10k-row batches": bench_ingest,
        "vectorbt 1.2 Portfolio.from_orders(targetpercent)": bench_backtest,
        "TA-Lib 0.8.1 C library (ta-lib 0.8.2 wheel)": bench_indicators,
    }
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    print("| benchmark | Prism | peer | peer name | speed ratio | Prism peak | peer peak |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for peer, suite in suites.items():
        for row in suite.run():
            print(row.markdown(peer), flush=True)


if __name__ == "__main__":
    main()
