"""Technical strategies from Prism's indicators: stateless rules on each symbol's history.

Each holds an equal share of equity per symbol while its rule says so, from the current bar's
indicator values. SMA and Bollinger depend on a fixed window. EMA-based MACD and Wilder-smoothed
RSI depend on all history, with a weight that decays geometrically; their ``warmup`` is a
convergence horizon of ``CONVERGENCE`` time constants (TA-Lib calls it the unstable period),
after which the seed's influence is below 1e-8 of a price and a window of ``warmup + 1`` bars
gives the whole history's decisions (tests check it bar by bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from prism.errors import ConfigError
from prism.indicators import bollinger, macd, rsi, sma
from prism.strategies.base import equal_split, per_symbol

CONVERGENCE = 10


def _ordered(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.sort_values(["symbol", "time"], kind="stable")


@dataclass(frozen=True)
class SmaCrossover:
    """Long (or short) a symbol while its fast simple moving average is above (below) the slow.

    Equity is split equally across the symbols. A tie between the averages, and the warm-up
    bars where the slow average is undefined, mean no position.
    """

    name: ClassVar[str] = "sma_crossover"
    fast: int
    slow: int
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ConfigError(
                f"sma_crossover needs 1 <= fast < slow, got fast={self.fast}, slow={self.slow}"
            )

    @property
    def warmup(self) -> int:
        """Return ``slow``: the bars one slow average needs."""
        return self.slow

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return the crossover weights of every bar (columns time, symbol, weight)."""
        ordered = _ordered(bars)
        fast = per_symbol(ordered, lambda close: sma(close, self.fast))
        slow = per_symbol(ordered, lambda close: sma(close, self.slow))
        return equal_split(ordered, np.sign(fast - slow), self.allow_short)


@dataclass(frozen=True)
class RsiMeanReversion:
    """Long a symbol while its RSI is below ``lower``; short above ``upper``, if allowed."""

    name: ClassVar[str] = "rsi_mean_reversion"
    period: int = 14
    lower: float = 30.0
    upper: float = 70.0
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not (self.period >= 2 and 0 < self.lower < self.upper < 100):
            raise ConfigError(
                f"rsi_mean_reversion needs period >= 2 and 0 < lower < upper < 100, got "
                f"period={self.period}, lower={self.lower}, upper={self.upper}"
            )

    @property
    def warmup(self) -> int:
        """Return the closes after which Wilder's smoothing has forgotten its seed."""
        return CONVERGENCE * self.period + 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return +share below ``lower``, -share above ``upper`` (if shorts), else 0."""
        ordered = _ordered(bars)
        value = per_symbol(ordered, lambda close: rsi(close, self.period))
        signal = np.where(value < self.lower, 1.0, np.where(value > self.upper, -1.0, 0.0))
        return equal_split(ordered, signal, self.allow_short)


@dataclass(frozen=True)
class MacdTrend:
    """Long a symbol while its MACD line is above the signal line; short below, if allowed."""

    name: ClassVar[str] = "macd_trend"
    fast: int = 12
    slow: int = 26
    signal: int = 9
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not (1 <= self.fast < self.slow and self.signal >= 1):
            raise ConfigError(
                f"macd_trend needs 1 <= fast < slow and signal >= 1, got fast={self.fast}, "
                f"slow={self.slow}, signal={self.signal}"
            )

    @property
    def warmup(self) -> int:
        """Return the bars after which the EMAs have forgotten their seeds."""
        return CONVERGENCE * (self.slow + self.signal)

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return the sign of the MACD histogram as weights, split equally."""
        ordered = _ordered(bars)
        hist = per_symbol(ordered, lambda close: macd(close, self.fast, self.slow, self.signal)[2])
        return equal_split(ordered, np.sign(hist), self.allow_short)


@dataclass(frozen=True)
class BollingerBreakout:
    """Long a symbol while it closes above its upper Bollinger band; short below the lower."""

    name: ClassVar[str] = "bollinger_breakout"
    period: int = 20
    width: float = 2.0
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.period < 2 or self.width <= 0:
            raise ConfigError(
                f"bollinger_breakout needs period >= 2 and width > 0, got "
                f"period={self.period}, width={self.width}"
            )

    @property
    def warmup(self) -> int:
        """Return ``period``: the closes one band needs."""
        return self.period

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return +share above the upper band, -share below the lower (if shorts), else 0."""
        ordered = _ordered(bars)
        close = ordered["close"].to_numpy(np.float64)
        upper = per_symbol(ordered, lambda c: bollinger(c, self.period, self.width)[0])
        lower = per_symbol(ordered, lambda c: bollinger(c, self.period, self.width)[2])
        signal = np.where(close > upper, 1.0, np.where(close < lower, -1.0, 0.0))
        return equal_split(ordered, signal, self.allow_short)


TECHNICAL = (SmaCrossover, RsiMeanReversion, MacdTrend, BollingerBreakout)
