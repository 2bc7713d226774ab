import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prism.backtest import metrics
from prism.backtest.engine import BacktestConfig, run_backtest
from prism.backtest.sweep import (
    best,
    curve_moments,
    expand_grid,
    parse_axis,
    run_sweep,
    sweep_executor,
)
from prism.backtest.validation import deflated_sharpe_ratio
from prism.core.errors import ConfigError
from prism.data.bars import BarPanel, close_panel
from prism.strategies import make_strategy

CONFIG = BacktestConfig(capital=1_000_000.0, commission_bps=2.0, slippage_bps=1.0)
SMALL_GRID = expand_grid(
    {"fast": [5, 10, 20], "slow": [20, 50, 100]}, lambda c: c["fast"] < c["slow"]
)


def test_a_range_axis_includes_its_stop_and_takes_a_step():
    assert parse_axis("fast=5..20:5") == ("fast", [5, 10, 15, 20])
    assert parse_axis("width=1.5,2,2.5") == ("width", [1.5, 2, 2.5])
    assert parse_axis("allow_short=true,false") == ("allow_short", ["true", "false"])


@pytest.mark.parametrize("text", ["fast", "=1,2", "fast=", "fast=a..b"])
def test_a_malformed_axis_says_what_is_expected(text):
    with pytest.raises(ConfigError, match="grid axis"):
        parse_axis(text)


def test_the_issue_grid_has_3325_combinations():
    grid = expand_grid(
        {"fast": range(5, 51), "slow": range(10, 101)}, lambda c: c["fast"] < c["slow"]
    )
    by_hand = sum(100 - max(fast + 1, 10) + 1 for fast in range(5, 51))
    assert len(grid) == by_hand == 3325


def test_panel_equals_pandas_pivot_and_take_inverts_place(bundled_bars):
    panel = BarPanel.from_bars(bundled_bars.sample(frac=1.0, random_state=3))
    for column in ("open", "close", "volume"):
        expected = close_panel(bundled_bars, column)
        pd.testing.assert_frame_equal(
            panel.frame(getattr(panel, column), name="symbol"), expected, check_freq=False
        )
    placed = panel.place(bundled_bars, "close")
    np.testing.assert_array_equal(panel.take(placed, bundled_bars), bundled_bars["close"])


def test_each_row_equals_a_backtest_of_that_combination_scored_by_prism_metrics(bundled_bars):
    table = run_sweep(bundled_bars, "sma_crossover", SMALL_GRID, CONFIG)

    assert table[["fast", "slow"]].to_dict("records") == SMALL_GRID
    for row in table.itertuples():
        result = run_backtest(
            bundled_bars,
            make_strategy("sma_crossover", {"fast": row.fast, "slow": row.slow}),
            CONFIG,
        )
        assert row.n_trades == len(result.trades)
        assert row.final_equity == result.equity.iloc[-1]
        assert row.sharpe == pytest.approx(metrics.sharpe(result.equity), rel=1e-9)
        assert row.max_drawdown == pytest.approx(metrics.max_drawdown(result.equity), rel=1e-12)
        assert row.total_return == pytest.approx(metrics.total_return(result.equity), rel=1e-12)


def test_curve_moments_match_scipy_on_a_real_equity_curve(bundled_bars):
    equity = run_backtest(
        bundled_bars, make_strategy("sma_crossover", {"fast": 10, "slow": 50}), CONFIG
    ).equity
    returns = metrics.returns(equity).to_numpy()

    mean, std, skew, kurtosis, drawdown = curve_moments(equity.to_numpy())

    assert mean == pytest.approx(returns.mean(), rel=1e-12)
    assert std == pytest.approx(returns.std(ddof=1), rel=1e-12)
    assert skew == pytest.approx(stats.skew(returns), rel=1e-9)
    assert kurtosis == pytest.approx(stats.kurtosis(returns, fisher=False), rel=1e-9)
    assert drawdown == pytest.approx(metrics.max_drawdown(equity), rel=1e-12)


def test_the_best_row_carries_its_deflated_sharpe_given_every_trial(bundled_bars):
    table = run_sweep(bundled_bars, "sma_crossover", SMALL_GRID, CONFIG)

    top = best(table)

    winner = table.loc[table["sharpe"].idxmax()]
    assert (top["fast"], top["slow"], top["trials"]) == (winner["fast"], winner["slow"], 8)
    assert top["deflated_sharpe"] == pytest.approx(
        deflated_sharpe_ratio(
            sharpe=winner["bar_sharpe"],
            n_obs=int(winner["n_obs"]),
            skew=winner["skew"],
            kurtosis=winner["kurtosis"],
            sharpe_variance=table["bar_sharpe"].var(ddof=1),
            n_trials=8,
        )
    )
    assert 0.0 <= top["deflated_sharpe"] <= 1.0


def test_a_strategy_without_panel_weights_sweeps_from_the_bar_frame(bundled_bars):
    grid = [{"entry_z": 1.5, "adf_pvalue": 0.25}, {"entry_z": 2.0, "adf_pvalue": 0.25}]
    table = run_sweep(bundled_bars, "pairs", grid, CONFIG, fixed={"first": "SPX", "second": "NDX"})
    for row, combo in zip(table.itertuples(), grid, strict=True):
        strategy = make_strategy("pairs", {"first": "SPX", "second": "NDX", **combo})
        assert row.final_equity == run_backtest(bundled_bars, strategy, CONFIG).equity.iloc[-1]


def test_a_rejected_combination_is_reported_and_the_rest_still_run(bundled_bars):
    table = run_sweep(
        bundled_bars, "sma_crossover", [{"fast": 50, "slow": 20}, {"fast": 5, "slow": 20}], CONFIG
    )
    assert "fast < slow" in table.loc[0, "error"]
    assert math.isfinite(table.loc[1, "sharpe"])


def test_an_empty_grid_is_refused(bundled_bars):
    with pytest.raises(ConfigError, match="grid is empty"):
        run_sweep(bundled_bars, "sma_crossover", [], CONFIG)


def test_a_dask_cluster_gives_the_same_table_as_local_threads(bundled_bars):
    """In-process workers: a spawned one would re-run whatever __main__ is (after the
    Streamlit AppTest, the dashboard script)."""
    from distributed import LocalCluster

    local = run_sweep(bundled_bars, "sma_crossover", SMALL_GRID, CONFIG)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        sweep_executor(cluster.scheduler_address) as executor,
    ):
        remote = run_sweep(
            bundled_bars, "sma_crossover", SMALL_GRID, CONFIG, executor=executor, chunk_size=2
        )
    pd.testing.assert_frame_equal(local, remote)
