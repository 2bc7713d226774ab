"""Synthetic bars for scale benchmarks: geometric random walks with a fixed seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prism.data.bars import normalise


def random_walk_bars(symbols: int, bars: int, seed: int = 7) -> pd.DataFrame:
    """Return a bar frame of ``symbols`` × ``bars`` daily bars (valid OHLC, positive prices)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2000-01-03", periods=bars, freq="D", tz="UTC")
    frames = []
    for k in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, bars)))
        open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, bars))
        frames.append(
            pd.DataFrame(
                {
                    "time": times,
                    "symbol": f"S{k:03d}",
                    "timeframe": "1d",
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
