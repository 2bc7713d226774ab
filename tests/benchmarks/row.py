"""One line of the benchmark table."""

from __future__ import annotations

from dataclasses import dataclass

from tests.benchmarks.measure import Measurement


@dataclass(frozen=True)
class Row:
    """A case measured for Prism and its peer over ``items`` items (rows, bars)."""

    case: str
    unit: str
    items: int
    prism: Measurement
    peer: Measurement

    def markdown(self, peer_name: str) -> str:
        """Return the row as a Markdown table line."""
        ours, theirs = self.items / self.prism.seconds, self.items / self.peer.seconds
        return (
            f"| {self.case} | {ours:,.0f} {self.unit} | {theirs:,.0f} {self.unit} | "
            f"{peer_name} | **{ours / theirs:.2f}x** | {self.prism.peak_mb:,.0f} MB | "
            f"{self.peer.peak_mb:,.0f} MB |"
        )
