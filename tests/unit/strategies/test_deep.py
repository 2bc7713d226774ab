"""Deep strategies (sequence models and RL agents) under the contract's checks: no look-ahead
(a variant normalised over the whole history is caught), bar-by-bar parity, the same data and
seed give the same weights, and fitted models are reused rather than retrained."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.backtest.validation import look_ahead_violations
from prism.core.errors import ConfigError
from prism.research.evaluation import look_ahead_cuts, parity_passes
from prism.strategies import LstmDirection, make_strategy
from prism.strategies.deep.walk_forward import WalkForward

SMALL = {
    "lstm_direction": {"window": 8, "train_bars": 120, "period": "year", "epochs": 5, "hidden": 8},
    "transformer_direction": {
        "window": 8,
        "train_bars": 120,
        "period": "year",
        "epochs": 5,
        "hidden": 8,
    },
    "ppo_agent": {"window": 5, "train_bars": 120, "period": "year", "steps": 256, "hidden": 8},
    "dqn_agent": {"window": 5, "train_bars": 120, "period": "year", "steps": 256, "hidden": 8},
}


@pytest.fixture(scope="module")
def spx(bundled_bars: pd.DataFrame) -> pd.DataFrame:
    """Four years of SPX daily bars: three yearly refits."""
    bars = bundled_bars[bundled_bars["symbol"] == "SPX"]
    return (
        bars[bars["time"] < pd.Timestamp("2013-01-01", tz="UTC")]
        .iloc[-1000:]
        .reset_index(drop=True)
    )


_TRAINED: dict[str, Any] = {}


def trained(name: str, bars: pd.DataFrame) -> Any:
    """One strategy per name, trained once on the module's bars and shared by the tests."""
    if name not in _TRAINED:
        strategy = make_strategy(name, SMALL[name])
        strategy.target_weights(bars)
        _TRAINED[name] = strategy
    return _TRAINED[name]


@dataclass(frozen=True)
class LeakyLstm(LstmDirection):
    """The LSTM normalised with the whole history's mean and deviation: a look-ahead leak."""

    name: ClassVar[str] = "leaky_lstm"

    def normaliser(self, x: np.ndarray, lo: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        return super().normaliser(x, 0, len(x))


def test_the_look_ahead_check_catches_normalisation_over_the_whole_history(spx):
    honest = trained("lstm_direction", spx)
    leaky = LeakyLstm(**SMALL["lstm_direction"])
    cuts = look_ahead_cuts(spx)

    assert look_ahead_violations(honest, spx, cuts) == []
    assert len(look_ahead_violations(leaky, spx, cuts)) > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_deep_strategies_pass_the_look_ahead_and_bar_by_bar_checks_and_trade(spx, name):
    strategy = trained(name, spx)

    weights = strategy.target_weights(spx)

    assert strategy.store.trained == 3
    assert 0.05 < (weights["weight"] != 0).mean() < 0.95
    assert look_ahead_violations(strategy, spx, look_ahead_cuts(spx)) == []
    assert parity_passes(strategy, spx, BacktestConfig(), 15)
    assert strategy.store.trained == 3, "the checks reuse the fitted models"


def _parameters(strategy: WalkForward) -> list[np.ndarray]:
    out = []
    for key in sorted(strategy.store.fits):
        model = strategy.load(strategy.store.fits[key].state)
        module = getattr(model, "policy", model)
        out.extend(t.detach().numpy().copy() for t in module.state_dict().values())
    return out


@pytest.mark.parametrize(
    "name", ["lstm_direction", "transformer_direction", "ppo_agent", "dqn_agent"]
)
def test_the_same_data_params_and_seed_give_the_same_weights_and_equity(spx, name):
    first = trained(name, spx)
    second = make_strategy(name, SMALL[name])
    other_seed = make_strategy(name, {**SMALL[name], "seed": 11})

    equity = run_backtest(spx, second, BacktestConfig()).equity
    other_seed.target_weights(spx)

    ours, theirs = _parameters(first), _parameters(second)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_series_equal(equity, run_backtest(spx, first, BacktestConfig()).equity)
    assert any(not np.array_equal(a, b) for a, b in zip(ours, _parameters(other_seed), strict=True))


def test_adopted_fits_are_not_retrained_and_give_the_same_weights(spx):
    source = trained("ppo_agent", spx)
    fresh = make_strategy("ppo_agent", SMALL["ppo_agent"]).with_fits(source.fits())

    weights = fresh.target_weights(spx)

    assert fresh.store.trained == 0
    pd.testing.assert_frame_equal(weights, source.target_weights(spx))
    assert len(fresh.learning_curves()) > 0


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("lstm_direction", {"period": "month"}, "period must be 'quarter' or 'year'"),
        ("transformer_direction", {"hidden": 5}, "needs an even hidden >= 2"),
        ("lstm_direction", {"window": 50, "train_bars": 60}, "train_bars >= window \\+ 20"),
        ("ppo_agent", {"steps": 10}, "needs steps >= 64"),
    ],
)
def test_bad_parameters_are_named(name, params, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy(name, params)


def test_without_the_deep_extra_the_strategies_are_listed_as_unavailable():
    script = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from typer.testing import CliRunner\n"
        "from prism.cli.app import app\n"
        "from prism.strategies import make_strategy\n"
        "result = CliRunner().invoke(app, ['strategies'])\n"
        "print(result.output)\n"
        "try:\n"
        "    make_strategy('lstm_direction', {})\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    for name in SMALL:
        assert "UNAVAILABLE (install the deep extra: `make install-deep`" in lines[name]
    assert "UNAVAILABLE" not in lines["sma_crossover"]
    assert "ConfigError strategy 'lstm_direction' needs PyTorch" in done.stdout
    assert "make install-deep" in done.stdout
