"""Time and peak Python-heap memory of a call, the two figures every benchmark reports.

Timing runs without tracemalloc (which slows Python-heavy code several-fold and would punish
whichever side does more in Python); one extra run under tracemalloc gives the peak.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """Best wall-clock seconds over the timed runs, and the peak traced allocation."""

    seconds: float
    peak_mb: float


def measure(
    action: Callable[[], Any], runs: int = 1, setup: Callable[[], Any] = lambda: None
) -> Measurement:
    """Time ``action`` ``runs`` times (``setup`` before each, untimed), then trace one more run."""
    times = []
    for _ in range(runs):
        setup()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    setup()
    tracemalloc.start()
    action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return Measurement(min(times), peak / 2**20)
