"""Performance metrics of an equity curve, with vectorbt's conventions (daily bars, 252 a year).

``sharpe`` uses the sample standard deviation of simple returns and a zero risk-free rate;
``annual_return`` compounds the total return over ``len(returns) / 252`` years;
``max_drawdown`` is the largest peak-to-trough loss as a positive fraction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = {"1d": 252, "1h": 252 * 6.5, "5m": 252 * 78, "1m": 252 * 390}


def returns(equity: pd.Series) -> pd.Series:
    """Return the simple returns between consecutive equity values (first bar dropped)."""
    return equity.pct_change().iloc[1:]


def total_return(equity: pd.Series) -> float:
    """Return final equity over initial equity, minus one."""
    return float(equity.iloc[-1] / equity.iloc[0] - 1.0)


def annual_return(equity: pd.Series, periods_per_year: float = 252) -> float:
    """Return the compound annual growth rate."""
    years = (len(equity) - 1) / periods_per_year
    return float((1.0 + total_return(equity)) ** (1.0 / years) - 1.0) if years > 0 else math.nan


def sharpe(equity: pd.Series, periods_per_year: float = 252) -> float:
    """Return the annualised Sharpe ratio (zero risk-free rate); NaN for a flat curve."""
    r = returns(equity)
    std = r.std(ddof=1)
    return float(r.mean() / std * math.sqrt(periods_per_year)) if std > 0 else math.nan


def max_drawdown(equity: pd.Series) -> float:
    """Return the largest peak-to-trough loss, as a positive fraction of the peak."""
    values = equity.to_numpy()
    return float(np.max(1.0 - values / np.maximum.accumulate(values)))


def drawdown(equity: pd.Series) -> pd.Series:
    """Return the drawdown at each bar (0 at a new high, negative below it)."""
    return equity / equity.cummax() - 1.0


def summary(equity: pd.Series, n_trades: int, periods_per_year: float = 252) -> dict[str, float]:
    """Return the headline metrics a research run logs and the promotion gates read."""
    return {
        "total_return": total_return(equity),
        "annual_return": annual_return(equity, periods_per_year),
        "sharpe": sharpe(equity, periods_per_year),
        "max_drawdown": max_drawdown(equity),
        "n_trades": float(n_trades),
        "final_equity": float(equity.iloc[-1]),
    }
