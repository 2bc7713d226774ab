"""What a research run logs besides the whole-period metrics: the out-of-sample split and its
figures, the look-ahead and parity tags, and the model signature."""

import numpy as np
import pandas as pd
import pytest

from prism.backtest.engine import BacktestConfig, BacktestResult
from prism.core.errors import ConfigError
from prism.research.evaluation import (
    FAILED,
    LOOKAHEAD_TAG,
    PARITY_TAG,
    PASSED,
    oos_start,
    segment_metrics,
    split_metrics,
    validation_tags,
)
from prism.strategies import SmaCrossover
from prism.strategies.pyfunc import StrategyModel, example_bars, strategy_signature

DAYS = pd.date_range("2020-01-01", periods=10, freq="D", tz="UTC")


def _bars(times: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": np.tile(times, 2), "symbol": ["A"] * len(times) + ["B"] * len(times)}
    )


def _result(equity: list[float], trade_times: list[pd.Timestamp]) -> BacktestResult:
    times = DAYS[: len(equity)]
    trades = pd.DataFrame({"time": trade_times, "quantity": [1.0] * len(trade_times)})
    empty = pd.DataFrame(index=times)
    return BacktestResult(
        equity=pd.Series(equity, index=times),
        trades=trades,
        positions=empty,
        weights=empty,
        marks=empty,
        config=BacktestConfig(),
    )


def test_the_out_of_sample_segment_is_the_last_fraction_of_the_bar_times():
    assert oos_start(_bars(DAYS), None, 0.3) == DAYS[7]


def test_an_oos_start_date_between_bars_starts_at_the_next_bar():
    assert oos_start(_bars(DAYS), "2020-01-05 12:00", 0.3) == DAYS[5]


@pytest.mark.parametrize("start", ["2019-01-01", "2021-01-01"])
def test_an_oos_start_outside_the_bars_names_their_range(start):
    with pytest.raises(ConfigError, match=r"2020-01-01 \.\. 2020-01-10"):
        oos_start(_bars(DAYS), start, 0.3)


def test_a_fraction_outside_zero_and_one_is_refused():
    with pytest.raises(ConfigError, match="oos_fraction"):
        oos_start(_bars(DAYS), None, 1.5)


def test_segment_figures_worked_by_hand():
    # returns from day 2 on: +10%, -10%, +10%, -10% (equal magnitudes: skew 0, Pearson kurtosis 1)
    result = _result([100.0, 100.0, 110.0, 99.0, 108.9, 98.01], [DAYS[1], DAYS[3], DAYS[4]])

    figures = segment_metrics(result, "1d", "oos_", start=DAYS[2])

    assert figures["oos_n_periods"] == 4
    assert figures["oos_n_trades"] == 2
    assert figures["oos_max_drawdown"] == pytest.approx(1 - 98.01 / 110.0)
    assert figures["oos_skew"] == pytest.approx(0.0, abs=1e-9)
    assert figures["oos_kurtosis"] == pytest.approx(1.0)
    assert figures["oos_bar_sharpe"] == pytest.approx(0.0, abs=1e-12)


def test_in_and_out_of_sample_split_the_returns_and_trades_between_them():
    result = _result([100.0, 101.0, 103.0, 102.0, 104.0, 108.0], [DAYS[1], DAYS[2], DAYS[5]])

    figures = split_metrics(result, "1d", DAYS[3])

    assert figures["is_n_periods"] + figures["oos_n_periods"] == 5
    assert figures["is_n_trades"] + figures["oos_n_trades"] == 3
    oos = np.array([102 / 103 - 1, 104 / 102 - 1, 108 / 104 - 1])
    assert figures["oos_sharpe"] == pytest.approx(oos.mean() / oos.std(ddof=1) * np.sqrt(252))


def test_the_kurtosis_is_pearsons_three_for_normal_returns():
    rng = np.random.default_rng(7)
    equity = 100 * np.cumprod(1 + rng.normal(0.0, 0.001, 200_000))
    times = pd.date_range("2000-01-01", periods=len(equity), freq="min", tz="UTC")
    result = BacktestResult(
        pd.Series(equity, index=times),
        pd.DataFrame({"time": pd.Series([], dtype="datetime64[ns, UTC]")}),
        pd.DataFrame(index=times),
        pd.DataFrame(index=times),
        pd.DataFrame(index=times),
        BacktestConfig(),
    )

    assert segment_metrics(result, "1d", "")["kurtosis"] == pytest.approx(3.0, abs=0.05)


class Peeking:
    """Deliberately wrong: long today when tomorrow's close is higher."""

    name = "peeking"
    warmup = 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        ordered = bars.sort_values(["symbol", "time"])
        ahead = ordered.groupby("symbol")["close"].shift(-1) > ordered["close"]
        return ordered[["time", "symbol"]].assign(weight=ahead.astype(float).to_numpy())


def test_an_honest_strategy_passes_both_checks_and_a_peeking_one_fails_look_ahead(bundled_bars):
    bars = bundled_bars[bundled_bars["time"] >= pd.Timestamp("2017-01-01", tz="UTC")]

    honest = validation_tags(SmaCrossover(fast=5, slow=20), bars, BacktestConfig(), 10)
    peeking = validation_tags(Peeking(), bars, BacktestConfig(), 10)

    assert honest == {LOOKAHEAD_TAG: PASSED, PARITY_TAG: PASSED}
    assert peeking[LOOKAHEAD_TAG] == FAILED


def test_the_signature_types_every_bar_column_and_accepts_utc_times(bundled_bars):
    model = StrategyModel("sma_crossover", {"fast": 5, "slow": 20})
    example = example_bars(bundled_bars)

    signature = strategy_signature(model, example)

    inputs = {c.name: c.to_dict()["type"] for c in signature.inputs.inputs}
    assert list(inputs) == list(example.columns)
    assert inputs["close"] == "double" and inputs["symbol"] == "string"
    assert inputs["time"] == "any"
    assert {c.name for c in signature.outputs.inputs} == {"time", "symbol", "weight"}
    assert len(example) == 2 * 3 and example["time"].dt.tz is not None


class Anchored:
    """Honest about the future but not about its warm-up: it compares each close with the
    first close it was given, which the live runner's short window moves."""

    name = "anchored"
    warmup = 5

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        ordered = bars.sort_values(["symbol", "time"])
        first = ordered.groupby("symbol")["close"].transform("first")
        return ordered[["time", "symbol"]].assign(
            weight=(ordered["close"] > first).astype(float).to_numpy() * 0.5
        )


def test_a_strategy_whose_warmup_is_too_short_fails_parity_but_not_look_ahead(bundled_bars):
    bars = bundled_bars[bundled_bars["time"] >= pd.Timestamp("2017-01-01", tz="UTC")]

    tags = validation_tags(Anchored(), bars, BacktestConfig(), 30)

    assert tags == {LOOKAHEAD_TAG: PASSED, PARITY_TAG: FAILED}


def test_the_peers_hold_since_the_last_cross_rule_fails_parity_so_it_cannot_go_live(bundled_bars):
    """``on_cross`` holds a side since the last cross, however long ago; the live runner (and
    the parity check) decide on the warm-up window alone, so its weights there differ and the
    promotion's parity gate refuses it; the band rule of the same averages passes."""
    bars = bundled_bars[bundled_bars["time"] >= pd.Timestamp("2017-01-01", tz="UTC")]

    held = validation_tags(SmaCrossover(fast=5, slow=20, on_cross=True), bars, BacktestConfig(), 30)
    band = validation_tags(SmaCrossover(fast=5, slow=20), bars, BacktestConfig(), 30)

    assert held[PARITY_TAG] == FAILED
    assert band[PARITY_TAG] == PASSED
