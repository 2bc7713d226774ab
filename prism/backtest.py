"""The backtester: a strategy's target weights become orders at each bar's close, which fill at
the next bar's open with slippage and commission, in one cash account shared by all symbols.

It steps bar by bar through the same :func:`prism.portfolio.order_quantities` and
:func:`prism.portfolio.affordable` the live runner uses, so the two engines agree order for
order. Within a bar, sells fill before buys, and a buy that the cash left cannot pay for (the
open gapped above the close it was sized at) is cut to what the cash covers; the rest of that
order is cancelled. This matches vectorbt's cash-sharing accounting, which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prism.data.bars import close_panel
from prism.errors import DataUnavailable
from prism.portfolio import AccountConfig
from prism.simulation import simulate
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
    times = opens.index
    equity, held, fills = simulate(
        opens.to_numpy(np.float64),
        closes.to_numpy(np.float64),
        weights.to_numpy(np.float64),
        config.capital,
        config.commission_bps,
        config.slippage_bps,
        config.band,
        config.lot,
    )
    bar, column, decided = (fills[:, k].astype(np.int64) for k in (0, 1, 5))
    trade_frame = pd.DataFrame(
        {
            "decided_at": times[decided],
            "time": times[bar],
            "symbol": np.asarray(symbols, dtype=object)[column],
            "quantity": fills[:, 2],
            "price": fills[:, 3],
            "commission": fills[:, 4],
        }
    )
    trade_frame.insert(3, "side", np.where(trade_frame["quantity"] > 0, "buy", "sell"))
    return BacktestResult(
        equity=pd.Series(equity, index=times, name="equity"),
        trades=trade_frame,
        positions=pd.DataFrame(held, index=times, columns=symbols),
        weights=weights,
        config=config,
    )
