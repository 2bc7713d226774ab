"""Strategies: map market history to target portfolio weights, using only data up to each bar.

The contract every strategy meets (the backtest and the live runner both rely on it)::

    strategy.warmup                    # bars of history one decision needs
    strategy.target_weights(bars)      # -> frame of (time, symbol, weight), weight in [-1, 1]

``target_weights`` takes a bar frame (see :mod:`prism.data.bars`) and returns one row per input
bar: ``time`` (datetime64[us, UTC]), ``symbol`` (str), ``weight`` (float64, fraction of equity).
The weight at bar ``t`` may use bars up to and including ``t`` only; it is traded at the next
bar's open.

A strategy may also offer ``panel_weights(panel)`` (:class:`PanelStrategy`): the same weights
as a (time × symbol) array computed straight from a :class:`~prism.data.bars.BarPanel`, which
lets a sweep pivot the bars once and run thousands of combinations on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol

from prism.core.jit import lazy_njit
from prism.core.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from prism.data.bars import BarPanel
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")


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
    values = np.array(signal, dtype=np.float64)
    _split_in_place(values, allow_short, max(ordered["symbol"].nunique(), 1))
    out = ordered[["time", "symbol"]].copy()
    out["weight"] = values
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


class PanelStrategy(Strategy, Protocol):
    """A strategy that also computes its weights on a panel, without a bar frame."""

    def panel_weights(self, panel: BarPanel) -> np.ndarray:
        """Return (time × symbol) target weights on ``panel``'s grid."""
        ...


def per_column(values: np.ndarray, series: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``series`` to each column of a panel over the rows where the symbol has a bar (a
    finite value), so a symbol's gaps do not shorten its windows; NaN elsewhere."""
    if values.shape[1] == 1 and np.isfinite(values).all():
        return np.asarray(series(values[:, 0]), dtype=np.float64).reshape(-1, 1)
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        column = values[:, j]
        present = np.isfinite(column)
        if present.all():
            out[:, j] = series(column)
        elif present.any():
            out[present, j] = series(column[present])
    return out


def split_equally(signal: np.ndarray, allow_short: bool) -> np.ndarray:
    """Return panel weights: ``signal`` (+1/0/-1, NaN as 0) over the number of symbols, shorts
    dropped unless allowed. ``signal`` is overwritten (it is a large temporary)."""
    signal = np.ascontiguousarray(signal)
    _split_in_place(signal.reshape(-1), allow_short, max(signal.shape[1], 1))
    return signal


@lazy_njit(cache=True, nogil=True)
def _split_in_place(values: np.ndarray, allow_short: bool, symbols: int) -> None:
    for i in range(values.size):
        value = values[i]
        if math.isnan(value) or (value < 0.0 and not allow_short):
            values[i] = 0.0
        else:
            values[i] = value / symbols


def on_bars(bars: pd.DataFrame, panel_weights: Callable[[BarPanel], np.ndarray]) -> pd.DataFrame:
    """Return (time, symbol, weight) for each row of ``bars`` from a panel-weights function."""
    from prism.data.bars import BarPanel

    panel = BarPanel.from_bars(bars)
    out = bars[["time", "symbol"]].reset_index(drop=True)
    out["weight"] = np.nan_to_num(panel.take(panel_weights(panel), out), nan=0.0)
    return out


class SignalRule:
    """A per-symbol rule on closes giving +1 (long), 0 or -1 (short), split equally across the
    symbols: subclasses (frozen dataclasses with an ``allow_short`` field) define
    :meth:`rule`, and get both ``target_weights`` and ``panel_weights`` from it."""

    allow_short: bool

    def rule(self, close: np.ndarray) -> np.ndarray:
        """Return +1/0/-1 per bar of one symbol's closes (oldest first)."""
        raise NotImplementedError

    def panel_weights(self, panel: BarPanel) -> np.ndarray:
        """Return the rule's weights on every bar of ``panel``."""
        return split_equally(per_column(panel.close, self.rule), self.allow_short)

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return the rule's weights for every bar of ``bars`` (columns time, symbol, weight)."""
        return on_bars(bars, self.panel_weights)
