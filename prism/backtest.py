"""The backtester: a strategy's target weights become orders at each bar's close, which fill at
the next bar's open with slippage and commission, in one cash account shared by all symbols.

It steps bar by bar through the same :func:`prism.portfolio.order_quantities` and
:func:`prism.portfolio.affordable` the live runner uses, so the two engines agree order for
order. Within a bar, sells fill before buys, and a buy that the cash left cannot pay for (the
open gapped above the close it was sized at) is cut to what the cash covers; the rest of that
order is cancelled. This matches vectorbt's cash-sharing accounting, which the tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prism.data.bars import close_panel
from prism.errors import DataUnavailable
from prism.portfolio import (
    AccountConfig,
    affordable,
    commission,
    fill_price,
    order_quantities,
)
from prism.strategies import Strategy


@dataclass(frozen=True, kw_only=True)
class BacktestConfig(AccountConfig):
    """Capital and costs of a backtest (see :class:`~prism.portfolio.AccountConfig`)."""


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced.

    - ``equity``: float64 Series indexed by bar time (UTC), equity at each close.
    - ``trades``: one row per fill: decided_at, time, symbol, side, quantity (signed float64),
      price, commission.
    - ``positions``: (time × symbol) float64 quantities held at each close.
    - ``weights``: (time × symbol) float64 target weights the strategy returned.
    """

    equity: pd.Series
    trades: pd.DataFrame
    positions: pd.DataFrame
    weights: pd.DataFrame
    config: BacktestConfig


def _sells_first(pending: dict[str, tuple[float, pd.Timestamp]], symbols: list[str]) -> list[int]:
    """Return the column indexes of pending orders, sells before buys, each in column order."""
    return sorted(
        (symbols.index(s) for s in pending), key=lambda j: (pending[symbols[j]][0] > 0, j)
    )


def run_backtest(
    bars: pd.DataFrame,
    strategy: Strategy,
    config: BacktestConfig,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` over ``bars`` (a bar frame of one timeframe).

    With ``start``, bars before it are history only: the strategy sees them, trading begins at
    the first bar at or after ``start`` (as the live runner begins with warm-up history).
    """
    if bars.empty:
        raise DataUnavailable("cannot backtest on an empty bar frame")
    opens = close_panel(bars, "open")
    closes = close_panel(bars, "close").reindex_like(opens)
    weights = (
        strategy.target_weights(bars)
        .pivot(index="time", columns="symbol", values="weight")
        .reindex_like(opens)
        .fillna(0.0)
    )
    if start is not None:
        first = int(opens.index.searchsorted(pd.Timestamp(start)))
        opens, closes, weights = opens.iloc[first:], closes.iloc[first:], weights.iloc[first:]
        if opens.empty:
            raise DataUnavailable(f"no bars at or after the backtest start {start}")
    symbols = list(opens.columns)
    rule = config.rule()
    cash = config.capital
    holdings = dict.fromkeys(symbols, 0.0)
    pending: dict[str, tuple[float, pd.Timestamp]] = {}
    equity = np.empty(len(opens))
    held = np.zeros((len(opens), len(symbols)))
    trades: list[tuple[object, ...]] = []
    open_values, close_values, weight_values = (
        opens.to_numpy(),
        closes.to_numpy(),
        weights.to_numpy(),
    )
    times = opens.index
    last_close = dict.fromkeys(symbols, math.nan)
    for t, time in enumerate(times):
        for j in _sells_first(pending, symbols):
            symbol = symbols[j]
            if not math.isfinite(open_values[t, j]):
                continue
            wanted, decided_at = pending.pop(symbol)
            price = fill_price(open_values[t, j], wanted, config.slippage_bps)
            quantity = affordable(wanted, price, cash, config.commission_bps, config.lot)
            if quantity == 0.0:
                continue
            fee = commission(quantity, price, config.commission_bps)
            cash -= quantity * price + fee
            holdings[symbol] += quantity
            trades.append((decided_at, time, symbol, quantity, price, fee))
        for j, symbol in enumerate(symbols):
            if math.isfinite(close_values[t, j]):
                last_close[symbol] = close_values[t, j]
        equity[t] = cash + sum(holdings[s] * last_close[s] for s in symbols if holdings[s])
        held[t] = [holdings[s] for s in symbols]
        targets = dict(zip(symbols, weight_values[t], strict=True))
        prices = {s: close_values[t, j] for j, s in enumerate(symbols)}
        for symbol, quantity in order_quantities(
            targets, holdings, prices, equity[t], rule
        ).items():
            pending[symbol] = (quantity, time)
    trade_frame = pd.DataFrame(
        trades, columns=["decided_at", "time", "symbol", "quantity", "price", "commission"]
    )
    trade_frame.insert(3, "side", np.where(trade_frame["quantity"] > 0, "buy", "sell"))
    return BacktestResult(
        equity=pd.Series(equity, index=times, name="equity"),
        trades=trade_frame,
        positions=pd.DataFrame(held, index=times, columns=symbols),
        weights=weights,
        config=config,
    )
