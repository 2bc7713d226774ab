"""The RL environment trades exactly as the backtester: the same actions as target weights give
the backtest's equity curve, bar for bar."""

from __future__ import annotations

import numpy as np
import pytest

from prism.agents.environment import ACTIONS, TradingEnv
from prism.backtest.engine import BacktestConfig, simulate_weights


@pytest.mark.parametrize("allow_short", [False, True])
def test_stepping_the_environment_gives_the_backtests_equity(bundled_bars, allow_short):
    spx = bundled_bars[bundled_bars["symbol"] == "SPX"].iloc[:400].reset_index(drop=True)
    config = BacktestConfig(commission_bps=5.0, slippage_bps=3.0, band=0.02, capital=100_000.0)
    actions = np.random.default_rng(3).integers(0, 3 if allow_short else 2, len(spx) - 1)
    close, opens = spx["close"].to_numpy(), spx["open"].to_numpy()
    market = np.column_stack([close[:-1], opens[1:], close[1:]])
    env = TradingEnv(np.zeros((len(market), 4), np.float32), market, config, allow_short)

    env.reset(seed=0)
    equity, rewards = [config.capital], []
    for action in actions:
        _, reward, done, _, info = env.step(action)
        equity.append(info["equity"])
        rewards.append(reward)
    weights = spx[["time", "symbol"]].assign(weight=np.r_[np.asarray(ACTIONS)[actions], 0.0])
    backtest = simulate_weights(spx, weights, config)

    assert done
    assert len(backtest.trades) > 20
    np.testing.assert_allclose(equity, backtest.equity.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.exp(np.cumsum(rewards)), np.array(equity[1:]) / equity[0])


def test_mismatched_observations_and_market_are_refused():
    with pytest.raises(ValueError, match="same, non-zero number of rows"):
        TradingEnv(np.zeros((3, 2)), np.zeros((4, 3)), BacktestConfig())
