"""Indicators: Prism's numba kernels against TA-Lib's C, the seven indicators on 1M bars."""

from __future__ import annotations

import time

import numpy as np
import talib

from prism.features import indicators
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

BARS = 1_000_000


def _talib(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> list[object]:
    """Return the same 14 outputs, kept alive as Prism's are, so peak memory compares."""
    return [
        *(talib.SMA(close, n) for n in (20, 50, 200)),
        talib.EMA(close, 12),
        talib.EMA(close, 26),
        talib.RSI(close, 14),
        *talib.MACD(close, 12, 26, 9),
        talib.ATR(high, low, close, 14),
        *talib.BBANDS(close, 20, 2, 2),
        talib.ADX(high, low, close, 14),
    ]


def run(notes: list[str]) -> list[Row]:
    """Return one row: the seven indicators (14 outputs) on one symbol of 1M bars."""
    bars = random_walk_bars(1, BARS)
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    started = time.perf_counter()
    indicators._one_symbol(high[:500], low[:500], close[:500])
    notes.append(f"indicators: numba compile or cache load {time.perf_counter() - started:.2f}s")
    ours = measure(lambda: indicators._one_symbol(high, low, close), runs=3)
    peer = measure(lambda: _talib(high, low, close), runs=3)
    return [
        Row(
            "7 indicators (14 outputs), 1M bars",
            "bars/s",
            BARS,
            ours,
            peer,
            "TA-Lib 0.8.1 C library (ta-lib 0.8.2 wheel)",
        )
    ]
