"""Performance and risk metrics of an equity curve (daily bars, 252 a year by default).

Definitions follow empyrical (and vectorbt, where it has the metric), which the tests use as
references: ``sharpe`` uses the sample standard deviation of simple returns and a zero
risk-free rate; ``sortino`` divides the annualised mean return by the annualised root mean
square of the negative returns; ``annual_return`` compounds the total return over
``len(returns) / 252`` years; ``max_drawdown`` is the largest peak-to-trough loss as a positive
fraction; historical VaR is the ``cutoff`` percentile of returns and CVaR the mean of the
returns at or below it (both negative numbers, a loss); parametric VaR assumes normal returns.
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


def annual_volatility(equity: pd.Series, periods_per_year: float = 252) -> float:
    """Return the annualised sample standard deviation of returns."""
    return float(returns(equity).std(ddof=1) * math.sqrt(periods_per_year))


def sortino(equity: pd.Series, periods_per_year: float = 252) -> float:
    """Return the annualised Sortino ratio (target return 0); NaN without losing bars."""
    r = returns(equity).to_numpy()
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * math.sqrt(periods_per_year)
    return float(np.mean(r) * periods_per_year / downside) if downside > 0 else math.nan


def calmar(equity: pd.Series, periods_per_year: float = 252) -> float:
    """Return the annual return over the maximum drawdown; NaN without a drawdown."""
    worst = max_drawdown(equity)
    return annual_return(equity, periods_per_year) / worst if worst > 0 else math.nan


def max_drawdown_duration(equity: pd.Series) -> int:
    """Return the most bars spent below a previous peak (a drawdown not yet recovered counts)."""
    below = (equity < equity.cummax()).to_numpy()
    longest = current = 0
    for is_below in below:
        current = current + 1 if is_below else 0
        longest = max(longest, current)
    return longest


def value_at_risk(equity: pd.Series, cutoff: float = 0.05) -> float:
    """Return the historical VaR: the ``cutoff`` percentile of one-bar returns."""
    return float(np.percentile(returns(equity).to_numpy(), 100 * cutoff))


def conditional_value_at_risk(equity: pd.Series, cutoff: float = 0.05) -> float:
    """Return the historical CVaR: the mean of the lowest ``cutoff`` share of returns."""
    r = returns(equity).to_numpy()
    index = int((len(r) - 1) * cutoff)
    return float(np.mean(np.partition(r, index)[: index + 1]))


def parametric_value_at_risk(equity: pd.Series, cutoff: float = 0.05) -> float:
    """Return the VaR of a normal distribution with the returns' mean and sample deviation."""
    # Imported here: scipy.stats takes ~3 s to import; only these metrics need it.
    from scipy.stats import norm

    r = returns(equity)
    return float(r.mean() + norm.ppf(cutoff) * r.std(ddof=1))


def parametric_conditional_value_at_risk(equity: pd.Series, cutoff: float = 0.05) -> float:
    """Return the expected return below the parametric VaR, under the same normal model."""
    # Imported here: scipy.stats takes ~3 s to import; only these metrics need it.
    from scipy.stats import norm

    r = returns(equity)
    return float(r.mean() - r.std(ddof=1) * norm.pdf(norm.ppf(cutoff)) / cutoff)


def trade_statistics(trades: pd.DataFrame) -> dict[str, float]:
    """Return win rate, profit factor and average P&L of round trips, from a fills frame.

    ``trades`` has symbol, quantity (signed) and price, oldest first, as
    :class:`~prism.backtest.engine.BacktestResult` gives them. A round trip ends whenever a
    position returns to zero; its P&L is the cash it made, commissions included.
    """
    results: list[float] = []
    for _, fills in trades.groupby("symbol", sort=False):
        held = 0.0
        cash = 0.0
        for quantity, price, fee in fills[["quantity", "price", "commission"]].itertuples(
            index=False
        ):
            held = round(held + quantity, 10)
            cash -= quantity * price + fee
            if held == 0.0:
                results.append(cash)
                cash = 0.0
    wins = [r for r in results if r > 0]
    losses = [r for r in results if r <= 0]
    return {
        "round_trips": float(len(results)),
        "win_rate": len(wins) / len(results) if results else math.nan,
        "profit_factor": sum(wins) / -sum(losses) if losses and sum(losses) < 0 else math.nan,
        "average_trade": float(np.mean(results)) if results else math.nan,
    }


def round_trips(trades: pd.DataFrame) -> pd.DataFrame:
    """Return one row per round trip of a fills frame (as :func:`trade_statistics` reads it,
    with ``time``): a position's life from flat back to flat, as backtesting.py's and
    vectorbt's trade lists show it.

    Columns: symbol, size (signed: + long, - short; the largest held), entry_time, exit_time,
    entry_price and exit_price (quantity-weighted over the fills that grew and shrank the
    position), pnl (commissions included). A position still open at the end is left out; a
    single fill that reverses a position (band rebalancing) does not end its round trip.
    """
    rows: list[dict[str, object]] = []
    for symbol, fills in trades.groupby("symbol", sort=False, observed=True):
        held = bought = sold = bought_value = sold_value = cash = 0.0
        size = 0.0
        entry_time = None
        for time, quantity, price, fee in fills[
            ["time", "quantity", "price", "commission"]
        ].itertuples(index=False):
            if held == 0.0:
                entry_time, size = time, 0.0
                bought = sold = bought_value = sold_value = cash = 0.0
            grows = held == 0.0 or (held > 0) == (quantity > 0)
            if grows:
                bought, bought_value = bought + abs(quantity), bought_value + abs(quantity) * price
            else:
                sold, sold_value = sold + abs(quantity), sold_value + abs(quantity) * price
            held = round(held + quantity, 10)
            size = held if abs(held) > abs(size) else size
            cash -= quantity * price + fee
            if held == 0.0:
                rows.append(
                    {
                        "symbol": symbol,
                        "size": size,
                        "entry_time": entry_time,
                        "exit_time": time,
                        "entry_price": bought_value / bought,
                        "exit_price": sold_value / sold,
                        "pnl": cash,
                    }
                )
    columns = ["symbol", "size", "entry_time", "exit_time", "entry_price", "exit_price", "pnl"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("entry_time", kind="stable").reset_index(drop=True)


def drawdown(equity: pd.Series) -> pd.Series:
    """Return the drawdown at each bar (0 at a new high, negative below it)."""
    return equity / equity.cummax() - 1.0


def summary(equity: pd.Series, n_trades: int, periods_per_year: float = 252) -> dict[str, float]:
    """Return the headline metrics a research run logs and the promotion gates read."""
    return {
        "total_return": total_return(equity),
        "annual_return": annual_return(equity, periods_per_year),
        "annual_volatility": annual_volatility(equity, periods_per_year),
        "sharpe": sharpe(equity, periods_per_year),
        "sortino": sortino(equity, periods_per_year),
        "calmar": calmar(equity, periods_per_year),
        "max_drawdown": max_drawdown(equity),
        "max_drawdown_bars": float(max_drawdown_duration(equity)),
        "var_95": value_at_risk(equity, 0.05),
        "cvar_95": conditional_value_at_risk(equity, 0.05),
        "var_99": value_at_risk(equity, 0.01),
        "cvar_99": conditional_value_at_risk(equity, 0.01),
        "n_trades": float(n_trades),
        "final_equity": float(equity.iloc[-1]),
    }
