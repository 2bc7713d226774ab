"""Strategies: map market history to target portfolio weights, using only data up to each bar.

The contract every strategy meets (the backtest and the live runner both rely on it)::

    strategy.warmup                    # bars of history one decision needs
    strategy.target_weights(bars)      # -> frame of (time, symbol, weight), weight in [-1, 1]

``target_weights`` takes a bar frame (see :mod:`prism.data.bars`) and returns one row per input
bar: ``time`` (datetime64[us, UTC]), ``symbol`` (str), ``weight`` (float64, fraction of equity).
The weight at bar ``t`` may use bars up to and including ``t`` only; it is traded at the next
bar's open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd


def per_symbol(
    ordered: pd.DataFrame,
    series: Callable[..., np.ndarray],
    columns: tuple[str, ...] = ("close",),
) -> np.ndarray:
    """Apply ``series`` to each symbol's ``columns`` (arrays, oldest first) of a frame sorted by
    (symbol, time), and concatenate the results in the frame's order."""
    arrays = [ordered[c].to_numpy(np.float64) for c in columns]
    symbols = ordered["symbol"].to_numpy()
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    stops = np.r_[starts[1:], len(symbols)]
    if len(symbols) == 0:
        return np.empty(0)
    return np.concatenate(
        [series(*(x[a:b] for x in arrays)) for a, b in zip(starts, stops, strict=True)]
    )


def equal_split(ordered: pd.DataFrame, signal: np.ndarray, allow_short: bool) -> pd.DataFrame:
    """Return (time, symbol, weight): ``signal`` (+1/0/-1, NaN as 0) over the symbol count,
    shorts dropped unless allowed."""
    values = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0)
    if not allow_short:
        values = np.clip(values, 0.0, None)
    out = ordered[["time", "symbol"]].copy()
    out["weight"] = values / max(ordered["symbol"].nunique(), 1)
    return out.reset_index(drop=True)


class Strategy(Protocol):
    """Anything with a name, a warm-up length and a ``target_weights`` method."""

    name: ClassVar[str]

    @property
    def warmup(self) -> int:
        """Return how many bars of history one decision needs."""
        ...

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight) for every bar of ``bars``."""
        ...
