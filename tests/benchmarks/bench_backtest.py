"""Backtesting: Prism's bar-by-bar engine against vectorbt's target-percent rebalancing."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import vectorbt as vbt

from prism.backtest import BacktestConfig, run_backtest
from prism.data.bars import close_panel
from prism.data.sources import ArchBarSource
from prism.strategies import SmaCrossover
from tests.benchmarks.synthetic import random_walk_bars

CONFIG = BacktestConfig(commission_bps=1.0, slippage_bps=0.0)


def _vectorbt(bars: pd.DataFrame, strategy: SmaCrossover) -> float:
    weights = strategy.target_weights(bars).pivot(index="time", columns="symbol", values="weight")
    opens = close_panel(bars, "open")
    portfolio = vbt.Portfolio.from_orders(
        close=close_panel(bars), size=weights.shift(1), price=opens, size_type="targetpercent",
        fees=CONFIG.commission_bps / 10_000, init_cash=CONFIG.capital, cash_sharing=True,
        group_by=True, call_seq="auto", freq="1D",
    )
    return float(portfolio.final_value())


def _best_of(runs: int, action) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> list[tuple[str, str, float, float]]:
    """Return (case, unit, prism rate, peer rate) rows."""
    strategy = SmaCrossover(fast=10, slow=50)
    cases = {
        "SMA backtest, SPX+NDX 1999-2018 (10k bars)": ArchBarSource().fetch(),
        "SMA backtest, 50 symbols x 4000 bars (200k bars)": random_walk_bars(50, 4_000),
    }
    _vectorbt(cases[next(iter(cases))], strategy)
    results = []
    for case, bars in cases.items():
        ours = _best_of(3, lambda b=bars: run_backtest(b, strategy, CONFIG))
        peer = _best_of(3, lambda b=bars: _vectorbt(b, strategy))
        results.append((case, "bars/s", len(bars) / ours, len(bars) / peer))
    assert np.isfinite(results[0][2])
    return results
