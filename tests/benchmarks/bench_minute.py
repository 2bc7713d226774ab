"""One million minute bars: an SMA(10, 20) crossover backtest and the full 3,325-combination
sweep, against vectorbt's ``Portfolio.from_signals`` and backtesting.py.

Every engine gets the same semantics: long-only, all-in on the crossover, fills at the next
bar's open, whole shares, 0.2 bp commission, no slippage, the same starting cash. Prism sizes at
the fill price and trades only when the target changes here (``size_at="fill"``,
``rebalance="change"``), as both peers do; the sweep then runs fused
(:mod:`prism.backtest.fused`). Each case checks that Prism made the same trades and reached
the same final equity as the peer before it reports a ratio.

The commission is low because the busiest combinations fill 100,000 times: at 1 bp they lose
over 99% of their capital.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt
from backtesting import Backtest
from backtesting import Strategy as BtStrategy

from prism.backtest.engine import BacktestConfig, BacktestResult, simulate_panel
from prism.backtest.fused import BLOCK
from prism.backtest.sweep import expand_grid, run_sweep
from prism.data.bars import BarPanel
from prism.strategies import SmaCrossover
from tests.benchmarks.measure import Measurement, measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

BARS = 1_000_000
CASH = 1_000_000.0
FEE_BPS = 0.2
CONFIG = BacktestConfig(
    capital=CASH,
    commission_bps=FEE_BPS,
    slippage_bps=0.0,
    lot=1.0,
    size_at="fill",
    rebalance="change",
)
VECTORBT_SAMPLE = 24


def minute_bars() -> pd.DataFrame:
    """Return 1M synthetic minute bars of one symbol (fixed seed, no drift)."""
    return random_walk_bars(1, BARS, timeframe="1m", volatility=0.0005, drift=0.0)


def prism_backtest(panel: BarPanel, fast: int, slow: int) -> BacktestResult:
    """Run Prism's SMA crossover on a panel, frames and all."""
    return simulate_panel(panel, SmaCrossover(fast, slow).panel_weights(panel), CONFIG)


def vectorbt_backtest(close: pd.Series, open_: pd.Series, fast: int, slow: int) -> Any:
    """Run the same crossover in vectorbt: signals from pandas rolling means, shifted a bar."""
    above = close.rolling(fast).mean() > close.rolling(slow).mean()
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries=above.shift(1, fill_value=False),
        exits=(~above).shift(1, fill_value=False),
        price=open_,
        size=np.inf,
        size_granularity=1.0,
        fees=FEE_BPS / 10_000,
        init_cash=CASH,
        freq="1min",
    )
    portfolio.final_value()
    return portfolio


def _bt_strategy(fast: int, slow: int) -> type[BtStrategy]:
    class Crossover(BtStrategy):
        def init(self) -> None:
            close = pd.Series(self.data.Close)
            self.fast = self.I(lambda: close.rolling(fast).mean().to_numpy())
            self.slow = self.I(lambda: close.rolling(slow).mean().to_numpy())

        def next(self) -> None:
            above = self.fast[-1] > self.slow[-1]
            if above and not self.position:
                self.buy()
            elif not above and self.position:
                self.position.close()

    return Crossover


def backtesting_py(frame: pd.DataFrame, fast: int, slow: int) -> Any:
    """Run the same crossover in backtesting.py (whole shares, fills at the next open)."""
    test = Backtest(frame, _bt_strategy(fast, slow), cash=CASH, commission=FEE_BPS / 10_000)
    return test.run()


def _same(ours: BacktestResult, count: int, final: float, peer: str) -> str:
    same_count = len(ours.trades) == count
    same_final = math.isclose(float(ours.equity.iloc[-1]), final, rel_tol=1e-9)
    verdict = "same" if same_count and same_final else "DIFFERENT"
    return (
        f"{verdict} as {peer}: {len(ours.trades):,} vs {count:,} fills, final equity "
        f"{ours.equity.iloc[-1]:,.2f} vs {final:,.2f}"
    )


def _timed_once(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = action()
    return time.perf_counter() - started, out


def run(notes: list[str]) -> list[Row]:
    """Return the single-backtest rows (vectorbt, backtesting.py) and the sweep row."""
    bars = minute_bars()
    panel = BarPanel.from_bars(bars)
    index = pd.DatetimeIndex(bars["time"].dt.tz_localize(None))
    close = pd.Series(bars["close"].to_numpy(), index)
    open_ = pd.Series(bars["open"].to_numpy(), index)

    first, _ = _timed_once(lambda: prism_backtest(panel, 10, 20))
    peer_first, _ = _timed_once(lambda: vectorbt_backtest(close, open_, 10, 20))
    notes.append(
        f"first call (numba compile, or Prism's on-disk cache load): Prism {first:.2f}s, "
        f"vectorbt {peer_first:.2f}s; not in the ratios"
    )
    ours = prism_backtest(panel, 10, 20)
    portfolio = vectorbt_backtest(close, open_, 10, 20)
    notes.append(
        "SMA(10,20) on 1M minute bars, "
        + _same(ours, int(portfolio.orders.count()), float(portfolio.final_value()), "vectorbt")
    )
    rows = [
        Row(
            "SMA(10,20) backtest, 1M minute bars",
            "bars/s",
            BARS,
            measure(lambda: prism_backtest(panel, 10, 20), runs=5),
            measure(lambda: vectorbt_backtest(close, open_, 10, 20), runs=5),
            "vectorbt 1.2 Portfolio.from_signals",
        )
    ]

    frame = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=index,
    )
    seconds, stats = _timed_once(lambda: backtesting_py(frame, 10, 20))
    fills = 2 * len(stats["_trades"]) + int(bool(ours.positions.iloc[-1, 0]))
    notes.append(
        "SMA(10,20) on 1M minute bars, "
        + _same(ours, fills, float(stats["Equity Final [$]"]), "backtesting.py")
    )
    rows.append(
        Row(
            "SMA(10,20) backtest, 1M minute bars",
            "bars/s",
            BARS,
            measure(lambda: prism_backtest(panel, 10, 20), runs=5),
            Measurement(seconds, math.nan),
            "backtesting.py 0.6 (one run)",
        )
    )
    rows.append(_sweep(bars, close, open_, panel, notes))
    return rows


def _sweep(
    bars: pd.DataFrame, close: pd.Series, open_: pd.Series, panel: BarPanel, notes: list[str]
) -> Row:
    combos = expand_grid(
        {"fast": range(5, 51), "slow": range(10, 101)}, lambda c: c["fast"] < c["slow"]
    )
    run_sweep(bars.head(2 * BLOCK), "sma_crossover", combos[:2], CONFIG)  # compile or load
    seconds, table = _timed_once(lambda: run_sweep(bars, "sma_crossover", combos, CONFIG))
    sample = combos[:: len(combos) // VECTORBT_SAMPLE][:VECTORBT_SAMPLE]
    started = time.perf_counter()
    portfolios = [vectorbt_backtest(close, open_, c["fast"], c["slow"]) for c in sample]
    per_combo = (time.perf_counter() - started) / len(sample)
    matches = 0
    for combo, portfolio in zip(sample, portfolios, strict=True):
        row = table[(table["fast"] == combo["fast"]) & (table["slow"] == combo["slow"])].iloc[0]
        matches += int(
            row["n_trades"] == portfolio.orders.count()
            and math.isclose(row["final_equity"], portfolio.final_value(), rel_tol=1e-9)
        )
    notes.append(
        f"sweep: {len(combos):,} combinations in {seconds:.1f}s; vectorbt timed on "
        f"{len(sample)} of them ({per_combo:.3f}s each) and scaled to the grid "
        f"({per_combo * len(combos):,.0f}s); {matches} of {len(sample)} sampled combinations "
        "have the same fills and final equity as vectorbt"
    )
    return Row(
        f"SMA sweep, {len(combos):,} combinations x 1M minute bars",
        "combos/s",
        len(combos),
        Measurement(seconds, math.nan),
        Measurement(per_combo * len(combos), math.nan),
        "vectorbt 1.2 from_signals, sampled and scaled",
    )
