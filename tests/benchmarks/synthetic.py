"""Synthetic bars for scale benchmarks: geometric random walks with a fixed seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prism.data.bars import normalise


def random_walk_bars(
    symbols: int,
    bars: int,
    seed: int = 7,
    timeframe: str = "1d",
    volatility: float = 0.01,
    drift: float = 0.0002,
) -> pd.DataFrame:
    """Return a bar frame of ``symbols`` × ``bars`` bars of ``timeframe`` (valid OHLC, positive
    prices), each close a log step of mean ``drift`` and deviation ``volatility`` from the last."""
    rng = np.random.default_rng(seed)
    step = {"1m": "1min", "5m": "5min", "1h": "1h", "1d": "1D"}[timeframe]
    times = pd.date_range("2000-01-03", periods=bars, freq=step, tz="UTC")
    frames = []
    for k in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(drift, volatility, bars)))
        open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, volatility / 5, bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, volatility, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, volatility, bars))
        frames.append(
            pd.DataFrame(
                {
                    "time": times,
                    "symbol": f"S{k:03d}",
                    "timeframe": timeframe,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.integers(1_000, 1_000_000, bars).astype(float),
                    "source": "synthetic",
                }
            )
        )
    return normalise(pd.concat(frames, ignore_index=True))
