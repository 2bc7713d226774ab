"""Deep strategies: inference per live cycle at 100 symbols (each model's fits already trained,
as a loaded model holds them) against the logistic direction classifier's cycle on the same
window, and training speed: sequence models per epoch against a scikit-learn logistic fit on the
same rows, and PPO/DQN per 1,000 steps on Prism's trading environment against the same agent on
Gymnasium's CartPole."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from prism.strategies import make_strategy
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

SYMBOLS = 100
SEQUENCE = {"window": 20, "train_bars": 250, "period": "quarter", "hidden": 16, "epochs": 5}
AGENT = {"window": 10, "train_bars": 250, "period": "quarter", "hidden": 32, "steps": 256}
EPOCHS = 20
STEPS = 2_000


def _business_days(bars: pd.DataFrame) -> pd.DataFrame:
    """The same bars on weekdays (calendar periods then hold the bars a market's do)."""
    times = sorted(bars["time"].unique())
    days = pd.bdate_range("2000-01-03", periods=len(times), tz="UTC")
    return bars.assign(time=bars["time"].map(dict(zip(times, days, strict=True))))


def _cycle_rows(window: pd.DataFrame, notes: list[str]) -> list[Row]:
    classifier = make_strategy("direction_classifier", {"train_bars": 250})
    peer = measure(lambda: classifier.target_weights(window), runs=1)
    rows = []
    for name, params in [
        ("lstm_direction", SEQUENCE),
        ("transformer_direction", SEQUENCE),
        ("ppo_agent", AGENT),
        ("dqn_agent", AGENT),
    ]:
        strategy = make_strategy(name, params)
        started = time.perf_counter()
        strategy.target_weights(window)
        notes.append(
            f"{name}: {strategy.store.trained} fits for the cycle benchmark in "
            f"{time.perf_counter() - started:.1f}s"
        )
        ours = measure(lambda s=strategy: s.target_weights(window), runs=3)
        rows.append(
            Row(
                f"{name} inference, one cycle of {SYMBOLS} symbols (fits loaded)",
                "symbols/s",
                SYMBOLS,
                ours,
                peer,
                "direction_classifier (logistic) cycle on the same window",
            )
        )
    return rows


def _training_rows() -> list[Row]:
    from sklearn.linear_model import LogisticRegression

    from prism.strategies.deep.walk_forward import sliding

    rng = np.random.default_rng(3)
    x = rng.normal(size=(500 + SEQUENCE["window"], 7))
    windows = sliding(x, SEQUENCE["window"]).astype(np.float32)[:500]
    y = (rng.random(500) > 0.5).astype(float)
    market = np.column_stack([np.full(500, 100.0), np.full(500, 100.0), np.full(500, 100.0)])
    flat = windows.reshape(500, -1)
    peer = measure(lambda: LogisticRegression(max_iter=1_000).fit(flat, y), runs=3)
    rows = []
    for name in ("lstm_direction", "transformer_direction"):
        strategy = make_strategy(name, {**SEQUENCE, "epochs": EPOCHS})
        ours = measure(lambda s=strategy: s.fit(windows, y, market), runs=2)
        rows.append(
            Row(
                f"{name} training, 500 windows of {SEQUENCE['window']}",
                "epochs/s",
                EPOCHS,
                ours,
                _scaled(peer, EPOCHS),
                "scikit-learn LogisticRegression fit on the same rows (one fit = one epoch)",
            )
        )
    one = random_walk_bars(1, 501)
    close, opens = one["close"].to_numpy(), one["open"].to_numpy()
    prices = np.column_stack([close[:-1], opens[1:], close[1:]])
    agent_windows = sliding(x, AGENT["window"]).astype(np.float32)[:500]
    for name in ("ppo_agent", "dqn_agent"):
        strategy = make_strategy(name, {**AGENT, "steps": STEPS})
        ours = measure(lambda s=strategy: s.fit(agent_windows, y, prices), runs=1)
        theirs = measure(lambda s=strategy: _cartpole(s), runs=1)
        rows.append(
            Row(
                f"{name} training on Prism's trading environment",
                "steps/s",
                STEPS,
                ours,
                theirs,
                "the same agent and network on Gymnasium CartPole-v1",
            )
        )
    return rows


def _scaled(measurement, factor: int):  # type: ignore[no-untyped-def]
    """A per-item measurement repeated ``factor`` times (the peer's time for as many items)."""
    return type(measurement)(measurement.seconds * factor, measurement.peak_mb)


def _cartpole(strategy) -> None:  # type: ignore[no-untyped-def]
    import gymnasium as gym

    strategy.make(gym.make("CartPole-v1")).learn(total_timesteps=STEPS)


def run(notes: list[str]) -> list[Row]:
    """Return the cycle rows (one per deep strategy) and the training rows."""
    bars = _business_days(random_walk_bars(SYMBOLS, 400))
    return [*_cycle_rows(bars, notes), *_training_rows()]
