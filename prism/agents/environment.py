"""A Gymnasium environment over Prism's own simulation of one symbol's account.

Each step is one bar: the agent's action is a target weight (flat, long, or short) decided at
the bar's close; the rebalancing rule (:func:`prism.backtest.portfolio.order_quantities`: band,
lots, costs reserved) sizes the order, which fills at the next bar's open with slippage
(:func:`~prism.backtest.portfolio.fill_price`), cut to the cash it can pay
(:func:`~prism.backtest.portfolio.affordable`) and charged commission
(:func:`~prism.backtest.portfolio.commission`); the account is marked at the next close. These are
the rules of the backtester and the live runner, so an agent learns the market it will trade. The
reward is the log change of equity.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from prism.backtest.portfolio import (
    AccountConfig,
    affordable,
    commission,
    fill_price,
    order_quantities,
)

ACTIONS = (0.0, 1.0, -1.0)
"""Target weight of each action: flat, long, short (short only when allowed)."""
SYMBOL = "asset"


class TradingEnv(gym.Env):
    """One symbol's account stepped bar by bar.

    ``observations`` (steps × dims, float32) is what the agent sees at each decision;
    ``market`` (steps × 3) the close each decision is made at, the next bar's open (the fill)
    and the next bar's close (the mark).
    """

    def __init__(
        self,
        observations: np.ndarray,
        market: np.ndarray,
        config: AccountConfig,
        allow_short: bool = False,
    ) -> None:
        super().__init__()
        if len(observations) != len(market) or len(market) < 1:
            raise ValueError("observations and market need the same, non-zero number of rows")
        self.observations = np.asarray(observations, dtype=np.float32)
        self.market = np.asarray(market, dtype=np.float64)
        self.config = config
        self.rule = config.rule()
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=self.observations.shape[1:], dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(3 if allow_short else 2)
        self.t = 0
        self.cash = config.capital
        self.held = 0.0
        self.equity = config.capital

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start again at the first bar with the starting capital and nothing held."""
        super().reset(seed=seed)
        self.t, self.cash, self.held = 0, self.config.capital, 0.0
        self.equity = self.config.capital
        return self.observations[0], {"equity": self.equity}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Trade toward the action's weight at this close, fill at the next open, mark at the
        next close; return the next observation and the log change of equity."""
        close, next_open, next_close = self.market[self.t]
        config = self.config
        orders = order_quantities(
            {SYMBOL: ACTIONS[int(action)]},
            {SYMBOL: self.held},
            {SYMBOL: close},
            self.equity,
            self.rule,
        )
        wanted = orders.get(SYMBOL, 0.0)
        if wanted and math.isfinite(next_open):
            price = fill_price(next_open, wanted, config.slippage_bps)
            quantity = affordable(
                wanted,
                price,
                self.cash,
                config.commission_bps,
                config.lot,
                config.commission_per_share,
            )
            if quantity:
                fee = commission(
                    quantity, price, config.commission_bps, config.commission_per_share
                )
                self.cash -= quantity * price + fee
                self.held += quantity
        equity = self.cash + self.held * next_close
        reward = math.log(equity / self.equity) if equity > 0 and self.equity > 0 else -1.0
        self.equity = equity
        self.t += 1
        done = self.t >= len(self.market) or equity <= 0
        obs = self.observations[min(self.t, len(self.market) - 1)]
        return obs, float(reward), bool(done), False, {"equity": equity}
