"""One line of the benchmark table."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
