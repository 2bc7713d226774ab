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
from typing import Literal

import numpy as np
import pandas as pd

from prism.data.bars import close_panel
from prism.errors import ConfigError, DataUnavailable
from prism.portfolio import AccountConfig, cap_leverage
from prism.simulation import simulate
from prism.strategies import Strategy


@dataclass(frozen=True, kw_only=True)
class BacktestConfig(AccountConfig):
    """Capital and costs of a backtest (see :class:`~prism.portfolio.AccountConfig`), and
    where orders fill: ``"open"`` of the next bar (the default, as live) or ``"close"`` of the
    bar that decided them (a market-on-close study; no live equivalent)."""

    fill_at: Literal["open", "close"] = "open"

    def __post_init__(self) -> None:
        if self.fill_at not in ("open", "close"):
            raise ConfigError(f"fill_at must be 'open' or 'close', got {self.fill_at!r}")


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced.

    - ``equity``: float64 Series indexed by bar time (UTC), equity at each close.
    - ``trades``: one row per fill: decided_at, time, symbol, side, quantity (signed float64),
      price, commission.
    - ``positions``: (time × symbol) float64 quantities held at each close.
    - ``weights``: (time × symbol) float64 target weights after the leverage cap.
    - ``exposure``: gross and net market value as fractions of equity, per bar.
    - ``turnover``: traded notional as a fraction of equity, per bar.
    """

    equity: pd.Series
    trades: pd.DataFrame
    positions: pd.DataFrame
    weights: pd.DataFrame
    exposure: pd.DataFrame
    turnover: pd.Series
    config: BacktestConfig


def run_backtest(
    bars: pd.DataFrame,
    strategy: Strategy,
    config: BacktestConfig,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` over ``bars`` (a bar frame of one timeframe), calling it once.

    With ``start``, bars before it are history only: the strategy sees them, trading begins at
    the first bar at or after ``start`` (as the live runner begins with warm-up history).
    """
    if bars.empty:
        raise DataUnavailable("cannot backtest on an empty bar frame")
    return simulate_weights(bars, strategy.target_weights(bars), config, start)


def run_bar_by_bar(
    bars: pd.DataFrame,
    strategy: Strategy,
    config: BacktestConfig,
    start: pd.Timestamp,
) -> BacktestResult:
    """Backtest by calling ``strategy`` at every bar from ``start`` on its last ``warmup + 1``
    bars per symbol, exactly as the live runner does; slower, and the proof that the
    whole-history path is honest (the tests require both to agree)."""
    times = np.sort(bars["time"].unique())
    rows = []
    for time in times[times >= pd.Timestamp(start)]:
        window = bars[bars["time"] <= time].groupby("symbol").tail(strategy.warmup + 1)
        weights = strategy.target_weights(window)
        rows.append(weights[weights["time"] == time])
    if not rows:
        raise DataUnavailable(f"no bars at or after the backtest start {start}")
    return simulate_weights(bars, pd.concat(rows, ignore_index=True), config, start)


def simulate_weights(
    bars: pd.DataFrame,
    target_weights: pd.DataFrame,
    config: BacktestConfig,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Trade ``target_weights`` (time, symbol, weight) over ``bars`` with ``config``'s costs."""
    opens = close_panel(bars, "open")
    closes = close_panel(bars, "close").reindex_like(opens)
    raw = target_weights.pivot(index="time", columns="symbol", values="weight")
    weights = pd.DataFrame(
        cap_leverage(raw.reindex_like(opens).to_numpy(), config.max_leverage),
        index=opens.index,
        columns=opens.columns,
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
        np.array(
            [config.commission_bps, config.commission_per_share, config.slippage_bps, config.lot]
        ),
        config.band,
        config.fill_at == "close",
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
    equity_series = pd.Series(equity, index=times, name="equity")
    values = held * closes.ffill().fillna(0.0).to_numpy()
    exposure = pd.DataFrame(
        {"gross": np.abs(values).sum(axis=1) / equity, "net": values.sum(axis=1) / equity},
        index=times,
    )
    traded = np.zeros(len(times))
    np.add.at(traded, bar, np.abs(fills[:, 2] * fills[:, 3]))
    return BacktestResult(
        equity=equity_series,
        trades=trade_frame,
        positions=pd.DataFrame(held, index=times, columns=symbols),
        weights=weights,
        exposure=exposure,
        turnover=pd.Series(traded / equity, index=times, name="turnover"),
        config=config,
    )
