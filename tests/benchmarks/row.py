"""One line of the benchmark table."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.benchmarks.measure import Measurement


@dataclass(frozen=True)
class Row:
    """A case measured for Prism and its named peer over ``items`` items (rows, bars)."""

    case: str
    unit: str
    items: int
    prism: Measurement
    peer: Measurement
    peer_name: str

    def markdown(self) -> str:
        """Return the row as a Markdown table line (peak memory "-" where not traced)."""
        ours, theirs = self.items / self.prism.seconds, self.items / self.peer.seconds
        return (
            f"| {self.case} | {ours:,.0f} {self.unit} | {theirs:,.0f} {self.unit} | "
            f"{self.peer_name} | **{ours / theirs:.2f}x** | {_megabytes(self.prism)} | "
            f"{_megabytes(self.peer)} |"
        )


def _megabytes(measurement: Measurement) -> str:
    peak = measurement.peak_mb
    return "-" if math.isnan(peak) else f"{peak:,.0f} MB"


HEADER = (
    "| benchmark | Prism | peer | peer name | speed ratio | Prism peak | peer peak |\n"
    "|---|---:|---:|---|---:|---:|---:|"
)
"""The head of the benchmark table (the README's)."""


def run_alone(run: Callable[[list[str]], Iterable[Any]]) -> None:
    """Run one benchmark file's ``run`` as ``python -m tests.benchmarks.bench_<name>`` does:
    with the services' environment, and print its table and notes."""
    import warnings

    from prism.core.settings import export_service_environment

    export_service_environment()
    warnings.simplefilter("ignore")
    notes: list[str] = []
    print(HEADER)
    for row in run(notes):
        print(row.markdown(), flush=True)
    for note in notes:
        print(f"- {note}")
