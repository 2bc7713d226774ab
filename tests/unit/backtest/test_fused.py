"""The fused SMA sweep against the general engine, combination by combination, and against
vectorbt's ``from_signals`` on the same signals."""

import math

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from prism.backtest.engine import BacktestConfig, simulate
from prism.backtest.fused import sma_crossover_sweep
from prism.backtest.sweep import SweepJob, _metrics, expand_grid, fused_sma_sweep, run_sweep
from prism.data.bars import BarPanel
from prism.strategies import SmaCrossover
from tests.benchmarks.synthetic import random_walk_bars

GRID = expand_grid(
    {"fast": range(3, 12, 2), "slow": range(6, 40, 3)}, lambda c: c["fast"] < c["slow"]
)
SIGNAL = BacktestConfig(
    capital=100_000.0,
    commission_bps=0.5,
    slippage_bps=0.0,
    lot=1.0,
    size_at="fill",
    rebalance="change",
)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(1, 3_000, timeframe="1m", volatility=0.002, drift=0.0)


def general(panel: BarPanel, combo: dict, config: BacktestConfig, allow_short: bool) -> dict:
    strategy = SmaCrossover(combo["fast"], combo["slow"], allow_short=allow_short)
    run = simulate(panel, strategy.panel_weights(panel), config)
    return _metrics(run.equity, len(run.fills), 252 * 390)


@pytest.mark.parametrize(
    ("allow_short", "costs"),
    [
        (False, {}),
        (True, {"slippage_bps": 3.0, "commission_per_share": 0.01, "max_leverage": 0.7}),
    ],
)
def test_the_fused_sweep_makes_the_general_engines_fills_and_equity(bars, allow_short, costs):
    config = BacktestConfig(**{**SIGNAL.__dict__, **costs})
    panel = BarPanel.from_bars(bars)
    table = run_sweep(bars, "sma_crossover", GRID, config, fixed={"allow_short": allow_short})

    assert len(table) == len(GRID)
    for combo, row in zip(GRID, table.to_dict("records"), strict=True):
        expected = general(panel, combo, config, allow_short)
        assert row["n_trades"] == expected["n_trades"] > 0
        assert row["final_equity"] == expected["final_equity"]
        assert row["max_drawdown"] == expected["max_drawdown"]
        for key in ("total_return", "sharpe", "skew", "kurtosis"):
            assert row[key] == pytest.approx(expected[key], rel=1e-7, abs=1e-12)


def test_blocks_carry_every_account_across_their_edges(bars):
    panel = BarPanel.from_bars(bars)
    fast = np.array([c["fast"] for c in GRID])
    slow = np.array([c["slow"] for c in GRID])
    costs = np.array([0.5, 0.0, 0.0, 1.0])
    args = (panel.open[:, 0], panel.close[:, 0], fast, slow, 100_000.0, costs, 1.0, True)

    whole = sma_crossover_sweep(*args, block=len(bars))
    pieces = sma_crossover_sweep(*args, block=97)

    assert np.array_equal(whole, pieces)


def test_sampled_combinations_make_vectorbts_trades(bars):
    index = pd.DatetimeIndex(bars["time"].dt.tz_localize(None))
    close = pd.Series(bars["close"].to_numpy(), index)
    open_ = pd.Series(bars["open"].to_numpy(), index)
    table = run_sweep(bars, "sma_crossover", GRID, SIGNAL)

    for combo in GRID[::7]:
        above = close.rolling(combo["fast"]).mean() > close.rolling(combo["slow"]).mean()
        portfolio = vbt.Portfolio.from_signals(
            close,
            entries=above.shift(1, fill_value=False),
            exits=(~above).shift(1, fill_value=False),
            price=open_,
            size=np.inf,
            size_granularity=1.0,
            fees=SIGNAL.commission_bps / 10_000,
            init_cash=SIGNAL.capital,
            freq="1min",
        )
        row = table[(table["fast"] == combo["fast"]) & (table["slow"] == combo["slow"])].iloc[0]
        assert row["n_trades"] == portfolio.orders.count() > 10
        assert math.isclose(row["final_equity"], portfolio.final_value(), rel_tol=1e-9)


def test_other_jobs_are_left_to_the_general_engine(bars):
    panel = BarPanel.from_bars(bars)
    banded = BacktestConfig(**{**SIGNAL.__dict__, "rebalance": "band"})
    two = pd.concat([bars, bars.assign(symbol="OTHER")], ignore_index=True)

    def job(config: BacktestConfig, on: BarPanel, fixed: dict) -> SweepJob:
        return SweepJob(on, None, "sma_crossover", fixed, config, 252.0)

    assert fused_sma_sweep(job(SIGNAL, panel, {}), GRID) is not None
    assert fused_sma_sweep(job(banded, panel, {}), GRID) is None
    assert fused_sma_sweep(job(SIGNAL, BarPanel.from_bars(two), {}), GRID) is None
    assert fused_sma_sweep(job(SIGNAL, panel, {"on_cross": True}), GRID) is None
