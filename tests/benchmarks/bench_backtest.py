"""Backtesting: Prism's bar-by-bar engine against vectorbt's target-percent rebalancing."""

from __future__ import annotations

import pandas as pd
import vectorbt as vbt

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.data.bars import close_panel
from prism.data.sources import ArchBarSource
from prism.strategies import SmaCrossover
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

CONFIG = BacktestConfig(commission_bps=1.0, slippage_bps=0.0)
PEER = "vectorbt 1.2 Portfolio.from_orders(targetpercent)"


def _vectorbt(bars: pd.DataFrame, strategy: SmaCrossover) -> float:
    weights = strategy.target_weights(bars).pivot(index="time", columns="symbol", values="weight")
    opens = close_panel(bars, "open")
    portfolio = vbt.Portfolio.from_orders(
        close=close_panel(bars),
        size=weights.shift(1),
        price=opens,
        size_type="targetpercent",
        fees=CONFIG.commission_bps / 10_000,
        init_cash=CONFIG.capital,
        cash_sharing=True,
        group_by=True,
        call_seq="auto",
        freq="1D",
    )
    return float(portfolio.final_value())


def run(notes: list[str]) -> list[Row]:
    """Return one row per case: Prism's and the peer's rate and peak memory."""
    strategy = SmaCrossover(fast=10, slow=50)
    cases = {
        "SMA backtest, SPX+NDX 1999-2018 (10k bars)": ArchBarSource().fetch(),
        "SMA backtest, 50 symbols x 4000 bars (200k bars)": random_walk_bars(50, 4_000),
    }
    _vectorbt(cases[next(iter(cases))], strategy)
    results = []
    for case, bars in cases.items():
        ours = measure(lambda b=bars: run_backtest(b, strategy, CONFIG), runs=3)
        peer = measure(lambda b=bars: _vectorbt(b, strategy), runs=3)
        results.append(Row(case, "bars/s", len(bars), ours, peer, PEER))
    return results
