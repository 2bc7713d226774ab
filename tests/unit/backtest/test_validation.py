import math

import numpy as np
import pandas as pd
import pytest

from prism.backtest.validation import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    look_ahead_violations,
    purged_kfold_splits,
    walk_forward_splits,
)
from prism.strategies import make_strategy
from tests.unit.strategies.test_strategies import EXAMPLES


def test_deflated_sharpe_reproduces_the_papers_numerical_example():
    """Bailey and López de Prado (2014), 'The Deflated Sharpe Ratio', worked example:
    annualised SR 2.5 over 1,250 daily returns, 100 trials with annualised SR variance 0.5,
    skewness -3 and kurtosis 10 give E[max SR] = 0.1132 (daily) and DSR = 0.9004."""
    days = 250
    sharpe = 2.5 / math.sqrt(days)

    assert expected_max_sharpe(0.5 / days, 100) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sharpe, 1250, -3.0, 10.0, 0.5 / days, 100) == pytest.approx(
        0.9004, abs=5e-5
    )


def test_more_trials_deflate_the_same_sharpe_further():
    values = [deflated_sharpe_ratio(0.1, 1000, 0.0, 3.0, 0.001, n) for n in (2, 10, 100, 1000)]

    assert values == sorted(values, reverse=True)


def test_rolling_walk_forward_tiles_the_data_with_tests_after_their_trains():
    splits = walk_forward_splits(100, train=40, test=20)

    assert [(s.start, s.stop, t.start, t.stop) for s, t in splits] == [
        (0, 40, 40, 60),
        (20, 60, 60, 80),
        (40, 80, 80, 100),
    ]


def test_expanding_walk_forward_always_trains_from_the_first_bar():
    splits = walk_forward_splits(100, train=40, test=30, expanding=True)

    assert [(s.start, s.stop, t.start, t.stop) for s, t in splits] == [
        (0, 40, 40, 70),
        (0, 70, 70, 100),
    ]


class Peeking:
    """Deliberately wrong: long today when tomorrow's close is higher."""

    name = "peeking"
    warmup = 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        ordered = bars.sort_values(["symbol", "time"])
        ahead = ordered.groupby("symbol")["close"].shift(-1) > ordered["close"]
        return ordered[["time", "symbol"]].assign(weight=ahead.astype(float).to_numpy())


def _cuts(bars: pd.DataFrame) -> list[pd.Timestamp]:
    times = np.sort(bars["time"].unique())
    return [pd.Timestamp(times[i]) for i in (300, 1_500, 4_000)]


def test_the_look_ahead_check_catches_a_strategy_that_peeks(bundled_bars):
    violations = look_ahead_violations(Peeking(), bundled_bars, _cuts(bundled_bars))

    assert violations
    assert {v.time for v in violations} <= set(_cuts(bundled_bars))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_available_strategy_passes_the_look_ahead_check(bundled_bars, name):
    strategy = make_strategy(name, EXAMPLES[name])

    assert look_ahead_violations(strategy, bundled_bars, _cuts(bundled_bars)) == []


def test_purged_kfold_keeps_no_training_label_that_reaches_into_the_test_fold():
    horizon, embargo = 5, 3

    splits = purged_kfold_splits(100, folds=4, horizon=horizon, embargo=embargo)

    assert [len(test) for _, test in splits] == [25, 25, 25, 25]
    for train, test in splits:
        first, last = test[0], test[-1]
        assert not set(train) & set(test)
        assert all(t + horizon < first or t > last + embargo for t in train)
    train, test = splits[1]
    assert train.tolist() == [*range(0, 20), *range(53, 100)]


def test_purged_kfold_with_no_horizon_or_embargo_is_plain_kfold():
    splits = purged_kfold_splits(10, folds=5, horizon=0)

    for train, test in splits:
        assert sorted([*train, *test]) == list(range(10))
