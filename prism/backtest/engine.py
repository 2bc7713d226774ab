"""The backtester: a strategy's target weights become orders at each bar's close, which fill at
the next bar's open with slippage and commission, in one cash account shared by all symbols.

It steps bar by bar through the same :func:`prism.backtest.portfolio.order_quantities` and
:func:`prism.backtest.portfolio.affordable` the live runner uses, so the two engines agree order for
order. Within a bar, sells fill before buys, and a buy that the cash left cannot pay for (the
open gapped above the close it was sized at) is cut to what the cash covers; the rest of that
order is cancelled. This matches vectorbt's cash-sharing accounting, which the tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from prism.backtest.metrics import PERIODS_PER_YEAR, summary, trade_statistics
from prism.backtest.portfolio import AccountConfig
from prism.backtest.simulation import cap_leverage
from prism.backtest.simulation import simulate as run_loop
from prism.core.errors import ConfigError, DataUnavailable
from prism.core.settings import Settings
from prism.data.bars import BarPanel
from prism.strategies import Strategy


@dataclass(frozen=True, kw_only=True)
class BacktestConfig(AccountConfig):
    """Capital and costs of a backtest (see :class:`~prism.backtest.portfolio.AccountConfig`), where
    orders fill, and when they are sized.

    ``fill_at``: ``"open"`` of the next bar (the default, as live) or ``"close"`` of the bar
    that decided them (a market-on-close study; no live equivalent). ``size_at``:
    ``"decision"`` (the default, as live: the quantity is fixed at the close that decided it)
    or ``"fill"`` (the quantity is worked out at the fill price, as vectorbt and backtesting.py
    do; an idealisation, like an order for a notional amount). ``rebalance``: ``"band"`` (the
    default, as live: a position drifting more than ``band`` of equity from its target is
    traded back) or ``"change"`` (a position is traded only when its target weight changes
    and held otherwise, as backtesting.py's ``Strategy`` and vectorbt's ``from_signals`` do;
    a change of side is a closing fill and an opening fill).
    """

    fill_at: Literal["open", "close"] = "open"
    size_at: Literal["decision", "fill"] = "decision"
    rebalance: Literal["band", "change"] = "band"

    def __post_init__(self) -> None:
        if self.rebalance not in ("band", "change"):
            raise ConfigError(f"rebalance must be 'band' or 'change', got {self.rebalance!r}")
        for name in ("capital", "lot", "max_leverage"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("band", "commission_bps", "commission_per_share", "slippage_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.fill_at not in ("open", "close"):
            raise ConfigError(f"fill_at must be 'open' or 'close', got {self.fill_at!r}")
        if self.size_at not in ("decision", "fill"):
            raise ConfigError(f"size_at must be 'decision' or 'fill', got {self.size_at!r}")


def backtest_config(settings: Settings, **given: Any) -> BacktestConfig:
    """Return a :class:`BacktestConfig` from ``given`` fields (None: not given), the rest from
    ``settings`` (capital and costs, as a paper account is charged) or the defaults."""
    chosen = {k: v for k, v in given.items() if v is not None}
    for name in ("capital", "commission_bps", "commission_per_share", "slippage_bps"):
        chosen.setdefault(name, getattr(settings, name))
    unknown = set(chosen) - {f.name for f in fields(BacktestConfig)}
    if unknown:
        raise ConfigError(f"unknown backtest settings: {', '.join(sorted(unknown))}")
    return BacktestConfig(**chosen)


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced.

    - ``equity``: float64 Series indexed by bar time (UTC), equity at each close.
    - ``trades``: one row per fill: decided_at, time, symbol and side (categorical), quantity
      (signed float64), price, commission.
    - ``positions``: (time × symbol) float64 quantities held at each close.
    - ``weights``: (time × symbol) float64 target weights after the leverage cap.
    - ``marks``: (time × symbol) the closes positions are valued at (last close carried).
    - :attr:`exposure` and :attr:`turnover`, worked out when first asked for.
    """

    equity: pd.Series
    trades: pd.DataFrame
    positions: pd.DataFrame
    weights: pd.DataFrame
    marks: pd.DataFrame
    config: BacktestConfig

    @cached_property
    def exposure(self) -> pd.DataFrame:
        """Return gross and net market value as fractions of equity, per bar."""
        values = self.positions.to_numpy() * self.marks.ffill().fillna(0.0).to_numpy()
        return pd.DataFrame(
            {
                "gross": np.abs(values).sum(axis=1) / self.equity.to_numpy(),
                "net": values.sum(axis=1) / self.equity.to_numpy(),
            },
            index=self.equity.index,
        )

    @cached_property
    def turnover(self) -> pd.Series:
        """Return traded notional as a fraction of equity, per bar."""
        notional = (self.trades["quantity"] * self.trades["price"]).abs()
        traded = notional.groupby(self.trades["time"]).sum().reindex(self.equity.index)
        return (traded.fillna(0.0) / self.equity).rename("turnover")

    def activity(self, periods_per_year: float) -> dict[str, float]:
        """Return the mean gross exposure and the annualised turnover (traded notional over
        equity per year), the two figures that say how hard a strategy works its capital."""
        return {
            "exposure": float(self.exposure["gross"].mean()),
            "turnover": float(self.turnover.mean() * periods_per_year),
        }


def report(result: BacktestResult, timeframe: str) -> dict[str, float]:
    """Return every figure a backtest is judged by: the headline metrics annualised for its
    timeframe, the round-trip statistics, and the mean exposure and annual turnover."""
    per_year = PERIODS_PER_YEAR.get(timeframe, 252)
    return {
        **summary(result.equity, len(result.trades), per_year),
        **trade_statistics(result.trades),
        **result.activity(per_year),
    }


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
    panel = BarPanel.from_bars(bars)
    return simulate_panel(panel, strategy_weights(strategy, panel, bars), config, start)


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
    panel = BarPanel.from_bars(bars)
    return simulate_panel(panel, panel.place(target_weights, "weight"), config, start)


def strategy_weights(strategy: Strategy, panel: BarPanel, bars: pd.DataFrame | None) -> np.ndarray:
    """Return ``strategy``'s weights on ``panel``'s grid: straight from the panel when the
    strategy can (:class:`~prism.strategies.base.PanelStrategy`), else from ``bars``, the bar
    frame the panel was built from."""
    if hasattr(strategy, "panel_weights"):
        return np.asarray(strategy.panel_weights(panel), dtype=np.float64)
    if bars is None:
        raise ConfigError(f"strategy {strategy.name!r} needs the bar frame, not only a panel")
    return panel.place(strategy.target_weights(bars), "weight")


@dataclass(frozen=True)
class Simulation:
    """The compiled loop's raw output over a panel's rows from ``first`` on."""

    first: int
    weights: np.ndarray
    equity: np.ndarray
    held: np.ndarray
    fills: np.ndarray


def simulate(
    panel: BarPanel,
    weights: np.ndarray,
    config: BacktestConfig,
    start: pd.Timestamp | None = None,
) -> Simulation:
    """Run the compiled loop on a panel and a (time × symbol) weight array; what a sweep
    calls per combination, with no frames built."""
    first = 0 if start is None else panel.since(start)
    if first >= len(panel.times):
        raise DataUnavailable(f"no bars at or after the backtest start {start}")
    capped = cap_leverage(np.asarray(weights[first:], dtype=np.float64), config.max_leverage)

    equity, held, fills = run_loop(
        panel.open[first:],
        panel.close[first:],
        capped,
        config.capital,
        np.array(
            [config.commission_bps, config.commission_per_share, config.slippage_bps, config.lot]
        ),
        config.band,
        config.fill_at == "close",
        config.size_at == "fill",
        config.rebalance == "change",
    )
    return Simulation(first, capped, equity, held, fills)


def simulate_panel(
    panel: BarPanel,
    weights: np.ndarray,
    config: BacktestConfig,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Trade (time × symbol) ``weights`` over ``panel`` with ``config``'s costs."""
    run = simulate(panel, weights, config, start)
    times = panel.times[run.first :]
    fills = run.fills
    bar, column, decided = (fills[:, k].astype(np.int64) for k in (0, 1, 5))
    trade_frame = pd.DataFrame(
        {
            "decided_at": times[decided],
            "time": times[bar],
            "symbol": pd.Categorical.from_codes(
                column, dtype=pd.CategoricalDtype(list(panel.symbols))
            ),
            "quantity": fills[:, 2],
            "price": fills[:, 3],
            "commission": fills[:, 4],
        }
    )
    side = pd.Categorical.from_codes(
        (fills[:, 2] < 0).astype(np.int8), dtype=pd.CategoricalDtype(["buy", "sell"])
    )
    trade_frame.insert(3, "side", pd.Series(side))
    symbols = list(panel.symbols)
    return BacktestResult(
        equity=pd.Series(run.equity, index=times, name="equity", copy=False),
        trades=trade_frame,
        positions=pd.DataFrame(run.held, index=times, columns=symbols, copy=False),
        weights=pd.DataFrame(run.weights, index=times, columns=symbols, copy=False),
        marks=pd.DataFrame(panel.close[run.first :], index=times, columns=symbols, copy=False),
        config=config,
    )
