"""A deep strategy goes the path every strategy goes: logged to a real MLflow store with its
fitted models, promoted through the gates (which recompute the look-ahead and bar-by-bar
checks from the loaded model), and traded by the live cycle from the registry, without
retraining: training is made to fail once the research run is logged."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.data.store import read_bars
from prism.live import cycle
from prism.live.replay import replay_times
from prism.registry import promotion
from prism.strategies import make_strategy
from prism.strategies.deep.walk_forward import WalkForward
from tests.integration.runner_support import (
    LENIENT,
    SYMBOLS,
    deploy,
    loosen_limits,
    research_run,
    use_mlflow_store,
)

PARAMS = {
    "lstm_direction": {"window": 8, "train_bars": 120, "period": "year", "epochs": 5, "hidden": 8},
    "ppo_agent": {"window": 5, "train_bars": 120, "period": "year", "steps": 256, "hidden": 8},
}


def _no_training(self: WalkForward, *args: object) -> tuple[bytes, list[float]]:
    raise AssertionError(f"{self.name} was retrained after it was logged")


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_a_logged_deep_strategy_passes_the_gates_and_trades_in_the_cycle_without_retraining(
    stocked: Engine, settings, tmp_path, monkeypatch, name
):
    use_mlflow_store(monkeypatch, tmp_path)
    store = settings.model_copy(update={"mlruns_dir": tmp_path, "model_name": f"deep-{name}"})
    loosen_limits(stocked, "deep strategy test")
    bars = read_bars(stocked, list(SYMBOLS), "2014-01-01", "2018-12-31", "1d")
    strategy = make_strategy(name, PARAMS[name])
    run_id = research_run(store, strategy, bars)
    cls = type(strategy)
    monkeypatch.setattr(cls, "fit", _no_training)

    promoted = promotion.promote(store, run_id, LENIENT, "alice", engine=stocked)
    deploy(stocked, "deep", model_name=f"deep-{name}")
    times = replay_times(stocked, list(SYMBOLS), 5)
    reports = [cycle.run_cycle(stocked, store, "deep", as_of=t) for t in times]

    assert promoted.promoted, promoted
    assert {r.outcome for r in reports} == {"traded"}
    with stocked.connect() as conn:
        decided = conn.execute(
            text(
                "SELECT time, symbol, (signals->>'target_weight')::float8 AS weight "
                "FROM audit.decisions WHERE deployment = 'deep'"
            )
        ).all()
    expected = run_backtest(bars, strategy, BacktestConfig()).weights
    assert len(decided) == len(SYMBOLS) * len(times)
    for row in decided:
        assert row.weight == pytest.approx(expected.at[pd.Timestamp(row.time), row.symbol])
    assert any(row.weight != 0 for row in decided)
