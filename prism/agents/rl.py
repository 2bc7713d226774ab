"""PPO and DQN agents (stable-baselines3) as strategies.

Each symbol's agent is trained walk-forward (:mod:`prism.strategies.deep.walk_forward`): at the
first bar of every calendar period it learns for ``steps`` environment steps on the
:class:`~prism.agents.environment.TradingEnv` built from the ``train_bars`` bars before that bar
(in sample), then its deterministic policy trades the bars up to the next refit (out of sample).
The observation is the window of normalised features only (no position), so a decision depends
on the bars in the window and nothing else. The environment charges the default
:class:`~prism.backtest.portfolio.AccountConfig` costs and band. stable-baselines3 is imported
only when an agent is trained or loaded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies.deep.walk_forward import WalkForward, torch_deterministic

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


@dataclass(frozen=True)
class Agent(WalkForward):
    """A walk-forward RL agent trading on its last ``window`` bars, trained for ``steps``
    environment steps with two hidden layers of ``hidden`` units; subclasses set
    :attr:`algorithm` and :meth:`make`."""

    algorithm: ClassVar[str]
    code_modules: ClassVar[tuple[str, ...]] = (
        "prism.agents",
        "prism.agents.environment",
        "prism.agents.rl",
        "prism.backtest.portfolio",
    )
    window: int = 10
    train_bars: int = 500
    period: str = "year"
    steps: int = 4096
    hidden: int = 32
    seed: int = 7
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.steps < 64 or self.hidden < 2:
            raise ConfigError(
                f"{self.name} needs steps >= 64 and hidden >= 2, got steps={self.steps}, "
                f"hidden={self.hidden}"
            )
        self.check()

    def make(self, env: Any) -> Any:
        """Return an untrained stable-baselines3 model on ``env``."""
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray, market: np.ndarray) -> tuple[bytes, list[float]]:
        """Return the trained agent (a stable-baselines3 zip) and its reward per episode."""
        from stable_baselines3.common.callbacks import BaseCallback

        from prism.agents.environment import TradingEnv
        from prism.backtest.portfolio import AccountConfig

        torch_deterministic(self.seed)
        env = TradingEnv(x.reshape(len(x), -1), market, AccountConfig(), self.allow_short)
        curve: list[float] = []

        class Episodes(BaseCallback):
            def _on_step(self) -> bool:
                curve.extend(
                    float(info["episode"]["r"])
                    for info in self.locals["infos"]
                    if "episode" in info
                )
                return True

        model = self.make(env)
        model.learn(total_timesteps=self.steps, callback=Episodes())
        buffer = io.BytesIO()
        model.save(buffer)
        return buffer.getvalue(), curve

    def load(self, state: bytes) -> Any:
        """Return the trained agent."""
        return self._algorithm().load(io.BytesIO(state), device="cpu")

    def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Return the target signal of the agent's deterministic action per window."""
        from prism.agents.environment import ACTIONS

        actions, _ = model.predict(x.reshape(len(x), -1), deterministic=True)
        return np.asarray(ACTIONS, dtype=np.float64)[np.asarray(actions, dtype=np.int64)]

    def _algorithm(self) -> Any:
        import stable_baselines3

        return getattr(stable_baselines3, self.algorithm)


@dataclass(frozen=True)
class PpoAgent(Agent):
    """Trade a symbol by a PPO agent's policy (flat/long, or short if allowed), trained
    walk-forward each period on Prism's simulation of the bars before it (stable-baselines3)."""

    name: ClassVar[str] = "ppo_agent"
    algorithm: ClassVar[str] = "PPO"

    def make(self, env: Any) -> Any:
        """Return a PPO agent with a small two-layer policy, one CPU thread, seeded."""
        from stable_baselines3 import PPO

        rollout = min(512, self.steps)
        return PPO(
            "MlpPolicy",
            env,
            n_steps=rollout,
            batch_size=min(64, rollout),
            n_epochs=4,
            seed=self.seed,
            device="cpu",
            verbose=0,
            policy_kwargs={"net_arch": [self.hidden, self.hidden]},
        )


@dataclass(frozen=True)
class DqnAgent(Agent):
    """Trade a symbol by a DQN agent's greedy action (flat/long, or short if allowed), trained
    walk-forward each period on Prism's simulation of the bars before it (stable-baselines3)."""

    name: ClassVar[str] = "dqn_agent"
    algorithm: ClassVar[str] = "DQN"

    def make(self, env: Any) -> Any:
        """Return a DQN agent with a small two-layer Q-network, one CPU thread, seeded."""
        from stable_baselines3 import DQN

        return DQN(
            "MlpPolicy",
            env,
            buffer_size=self.steps,
            learning_starts=min(256, self.steps // 4),
            train_freq=4,
            target_update_interval=256,
            exploration_fraction=0.5,
            seed=self.seed,
            device="cpu",
            verbose=0,
            policy_kwargs={"net_arch": [self.hidden, self.hidden]},
        )
