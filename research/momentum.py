"""Time-series momentum: hold a symbol while its return over ``lookback`` bars is positive.

An example of a researcher's own strategy. It is registered under the ``prism.strategies``
entry point in pyproject.toml, so ``prism research run notebooks/02_backtest_strategy.ipynb
-p strategy time_series_momentum -p strategy_params "{'lookback': 126}"`` backtests it, the registry
packages it, and the live runner trades it like any built-in strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies import equal_split

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")


@dataclass(frozen=True)
class TimeSeriesMomentum:
    """Long (short, if allowed) a symbol while its ``lookback``-bar return is above (below) 0."""

    name: ClassVar[str] = "time_series_momentum"
    lookback: int
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.lookback < 1:
            raise ConfigError(f"time_series_momentum needs lookback >= 1, got {self.lookback}")

    @property
    def warmup(self) -> int:
        """Return ``lookback + 1``: the bars one return over ``lookback`` bars needs."""
        return self.lookback + 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight) for every bar, equity split equally across symbols."""
        ordered = bars.sort_values(["symbol", "time"], kind="stable")
        past = ordered.groupby("symbol", sort=False)["close"].shift(self.lookback)
        return equal_split(
            ordered, np.sign((ordered["close"] / past - 1.0).to_numpy()), self.allow_short
        )
