import functools

import numpy as np
import pandas as pd
import pytest
import talib

from prism.core.errors import ConfigError
from prism.strategies import SmaCrossover, Strategy, available_strategies, make_strategy


def _one_symbol(bars: pd.DataFrame, symbol: str = "SPX") -> pd.DataFrame:
    return bars[bars["symbol"] == symbol].reset_index(drop=True)


def test_sma_crossover_is_long_exactly_where_talib_fast_sma_is_above_slow(bundled_bars):
    spx = _one_symbol(bundled_bars)
    close = spx["close"].to_numpy()
    fast, slow = talib.SMA(close, 10), talib.SMA(close, 50)
    expected = np.where(np.isnan(slow), 0.0, (fast > slow).astype(float))

    weights = SmaCrossover(fast=10, slow=50).target_weights(spx)

    assert weights["time"].tolist() == spx["time"].tolist()
    np.testing.assert_array_equal(weights["weight"].to_numpy(), expected)


def test_sma_crossover_splits_equity_equally_and_shorts_only_when_allowed(bundled_bars):
    long_only = SmaCrossover(fast=5, slow=20).target_weights(bundled_bars)
    long_short = SmaCrossover(fast=5, slow=20, allow_short=True).target_weights(bundled_bars)

    assert set(long_only["weight"].unique()) == {0.0, 0.5}
    assert set(long_short["weight"].unique()) == {-0.5, 0.0, 0.5}


EXAMPLES = {
    "sma_crossover": {"fast": 10, "slow": 50},
    "rsi_mean_reversion": {"period": 14, "allow_short": True},
    "macd_trend": {"allow_short": True},
    "bollinger_breakout": {"period": 20, "width": 2.0, "allow_short": True},
    "time_series_momentum": {"lookback": 126, "allow_short": True},
    "direction_classifier": {"model": "logistic", "train_bars": 250, "allow_short": True},
    "pairs": {"first": "SPX", "second": "NDX", "entry_z": 1.5, "adf_pvalue": 0.25},
    "ensemble_vote": {
        "members": "sma_crossover(fast=10,slow=50,allow_short=True);"
        "rsi_mean_reversion(allow_short=True);macd_trend(allow_short=True)"
    },
    "ensemble_performance": {
        "members": "sma_crossover(fast=10,slow=50);bollinger_breakout(allow_short=True);macd_trend",
        "lookback": 63,
    },
    "lstm_direction": {"window": 8, "train_bars": 120, "period": "year", "epochs": 3, "hidden": 4},
    "transformer_direction": {
        "window": 8,
        "train_bars": 120,
        "period": "year",
        "epochs": 3,
        "hidden": 4,
    },
    "ppo_agent": {"window": 4, "train_bars": 120, "period": "year", "steps": 64, "hidden": 4},
    "dqn_agent": {"window": 4, "train_bars": 120, "period": "year", "steps": 64, "hidden": 4},
}


@functools.cache
def _strategy(name: str) -> Strategy:
    """One strategy per name: a deep one trains once, and each cut history reuses the models
    whose training data it holds unchanged (a leak would change that data and retrain)."""
    return make_strategy(name, EXAMPLES[name])


def test_every_available_strategy_has_an_example_for_the_look_ahead_check():
    assert set(EXAMPLES) == set(available_strategies())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("cut", [60, 61, 500, 2_000, 5_030])
def test_weight_at_a_bar_is_the_same_on_history_cut_at_that_bar(bundled_bars, name, cut):
    strategy = _strategy(name)
    full = strategy.target_weights(bundled_bars).set_index(["symbol", "time"])["weight"]
    cut_time = _one_symbol(bundled_bars)["time"].iloc[cut]
    history = bundled_bars[bundled_bars["time"] <= cut_time]

    cut_weights = strategy.target_weights(history).set_index(["symbol", "time"])["weight"]

    pd.testing.assert_series_equal(cut_weights, full.loc[cut_weights.index])


def test_time_series_momentum_from_research_is_long_where_talib_roc_is_positive(bundled_bars):
    ndx = _one_symbol(bundled_bars, "NDX")
    roc = talib.ROC(ndx["close"].to_numpy(), 126)
    expected = np.where(np.isnan(roc), 0.0, (roc > 0).astype(float))

    weights = make_strategy("time_series_momentum", {"lookback": 126}).target_weights(ndx)

    np.testing.assert_array_equal(weights["weight"].to_numpy(), expected)


def _talib_signal(name: str, bars: pd.DataFrame) -> np.ndarray:
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    del high, low
    if name == "rsi_mean_reversion":
        value = talib.RSI(close, 14)
        return np.where(value < 30, 1.0, np.where(value > 70, -1.0, 0.0))
    if name == "macd_trend":
        return np.nan_to_num(np.sign(talib.MACD(close, 12, 26, 9)[2]), nan=0.0)
    upper, _, lower = talib.BBANDS(close, 20, 2, 2)
    return np.where(close > upper, 1.0, np.where(close < lower, -1.0, 0.0))


@pytest.mark.parametrize("name", ["rsi_mean_reversion", "macd_trend", "bollinger_breakout"])
def test_library_strategies_follow_their_talib_rule(bundled_bars, name):
    spx = _one_symbol(bundled_bars)

    weights = make_strategy(name, EXAMPLES[name]).target_weights(spx)

    np.testing.assert_array_equal(weights["weight"].to_numpy(), _talib_signal(name, spx))


@pytest.mark.parametrize("model", ["logistic", "xgboost"])
def test_the_direction_classifier_trades_only_after_its_first_training_quarter(bundled_bars, model):
    strategy = make_strategy("direction_classifier", {"model": model, "train_bars": 250})

    weights = strategy.target_weights(bundled_bars)

    spx = weights[weights["symbol"] == "SPX"].reset_index(drop=True)
    first_trade = spx.loc[spx["weight"] != 0, "time"].min()
    assert (
        pd.Timestamp("2000-01-01", tz="UTC") <= first_trade < pd.Timestamp("2000-07-01", tz="UTC")
    )
    assert 0.2 < (weights["weight"] != 0).mean() < 0.9


def test_an_unknown_classifier_is_named():
    with pytest.raises(ConfigError, match="unknown classifier 'svm'; use 'logistic' or 'xgboost'"):
        make_strategy("direction_classifier", {"model": "svm"})


def test_an_unknown_strategy_name_lists_the_available_ones():
    names = ", ".join(sorted(available_strategies()))
    expected = f"unknown strategy 'momentum'; available strategies: {names}$"
    with pytest.raises(ConfigError, match=expected):
        make_strategy("momentum", {})


def test_a_missing_parameter_is_named_with_the_strategys_parameters():
    expected = "missing parameter\\(s\\) slow; its parameters are allow_short, fast, on_cross, slow"
    with pytest.raises(ConfigError, match=expected):
        make_strategy("sma_crossover", {"fast": 10})


def test_an_unknown_parameter_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match="no parameter\\(s\\) fsat; its parameters are"):
        make_strategy("sma_crossover", {"fast": 10, "slow": 50, "fsat": 3})


def test_fast_must_be_shorter_than_slow():
    with pytest.raises(ConfigError, match="fast < slow"):
        make_strategy("sma_crossover", {"fast": 50, "slow": 10})


def test_a_fractional_window_is_refused_and_whole_floats_are_accepted():
    with pytest.raises(ConfigError, match="whole number"):
        make_strategy("sma_crossover", {"fast": 10.5, "slow": 50})
    assert make_strategy("sma_crossover", {"fast": 10.0, "slow": 50}).fast == 10
