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
from typing import TYPE_CHECKING, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies.base import SignalRule

if TYPE_CHECKING:
    import numpy as np

    from prism.features import indicators
else:
    np = lazy_module("numpy")
    indicators = lazy_module("prism.features.indicators")

CONVERGENCE = 10


@dataclass(frozen=True)
class SmaCrossover(SignalRule):
    """Long (or short) a symbol while its fast simple moving average is above (below) the slow.

    Equity is split equally across the symbols. A tie between the averages, and the warm-up
    bars where the slow average is undefined, mean no position.

    With ``on_cross`` the side changes only when the averages cross (fast from strictly below
    to strictly above the slow, or the reverse) and is held in between, with no position
    before the first cross: backtesting.py's ``SmaCross`` example. Its decisions then depend
    on the history since the first cross, not on ``warmup`` bars alone.
    """

    name: ClassVar[str] = "sma_crossover"
    fast: int
    slow: int
    allow_short: bool = False
    on_cross: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ConfigError(
                f"sma_crossover needs 1 <= fast < slow, got fast={self.fast}, slow={self.slow}"
            )

    @property
    def warmup(self) -> int:
        """Return ``slow``: the bars one slow average needs."""
        return self.slow

    def rule(self, close: np.ndarray) -> np.ndarray:
        """Return the sign of fast minus slow average."""
        gap = indicators.sma(close, self.fast)
        gap -= indicators.sma(close, self.slow)
        side = np.sign(gap, out=gap)
        return held_from_crosses(side) if self.on_cross else side


def held_from_crosses(side: np.ndarray) -> np.ndarray:
    """Return the side (+1/-1) taken at each strict cross (from -1 to +1 or +1 to -1) of a
    sign series, held until the next cross; 0 before the first (NaN and 0 never cross)."""
    before = np.r_[np.nan, side[:-1]]
    crossed = (side * before) < 0
    last = np.maximum.accumulate(np.where(crossed, np.arange(side.size), -1))
    return np.where(last >= 0, side[np.maximum(last, 0)], 0.0)


@dataclass(frozen=True)
class RsiMeanReversion(SignalRule):
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

    def rule(self, close: np.ndarray) -> np.ndarray:
        """Return +1 below ``lower``, -1 above ``upper``, else 0."""
        value = indicators.rsi(close, self.period)
        return np.where(value < self.lower, 1.0, np.where(value > self.upper, -1.0, 0.0))


@dataclass(frozen=True)
class MacdTrend(SignalRule):
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

    def rule(self, close: np.ndarray) -> np.ndarray:
        """Return the sign of the MACD histogram."""
        return np.sign(indicators.macd(close, self.fast, self.slow, self.signal)[2])


@dataclass(frozen=True)
class BollingerBreakout(SignalRule):
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

    def rule(self, close: np.ndarray) -> np.ndarray:
        """Return +1 above the upper band, -1 below the lower, else 0."""
        upper, _, lower = indicators.bollinger(close, self.period, self.width)
        return np.where(close > upper, 1.0, np.where(close < lower, -1.0, 0.0))


TECHNICAL = (SmaCrossover, RsiMeanReversion, MacdTrend, BollingerBreakout)
