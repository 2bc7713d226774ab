import mlflow
import numpy as np
import pandas as pd
import pytest

from prism.backtest.validation import look_ahead_violations
from prism.core.errors import ConfigError
from prism.strategies import PerformanceEnsemble, VoteEnsemble, make_strategy, strategy_params
from prism.strategies.ensemble import majority_vote, parse_members
from prism.strategies.pyfunc import StrategyModel

MEMBERS = (
    "sma_crossover(fast=10,slow=50,allow_short=True);"
    "rsi_mean_reversion(allow_short=True);macd_trend(allow_short=True)"
)


def _member_panels(bars: pd.DataFrame, spec: str) -> list[pd.DataFrame]:
    return [
        make_strategy(name, params)
        .target_weights(bars)
        .pivot(index="time", columns="symbol", values="weight")
        for name, params in parse_members(spec)
    ]


def test_a_members_spec_is_read_into_names_and_literal_parameters():
    spec = " sma_crossover(fast=10, slow=50.0, allow_short=True); macd_trend ;pairs(first=SPX)"

    assert parse_members(spec) == [
        ("sma_crossover", {"fast": 10, "slow": 50.0, "allow_short": True}),
        ("macd_trend", {}),
        ("pairs", {"first": "SPX"}),
    ]


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        (" ; ", "needs at least one member"),
        ("sma_crossover(fast=10", "cannot read ensemble member 'sma_crossover\\(fast=10'"),
        ("sma_crossover(10,50)", "member 'sma_crossover': expected key=value, got '10'"),
        ("macd_trend;momentum", "member 'momentum': unknown strategy 'momentum'"),
        ("sma_crossover(fast=10)", "member 'sma_crossover': .*missing parameter\\(s\\) slow"),
        ("sma_crossover(fast=50,slow=10)", "member 'sma_crossover': .*fast < slow"),
    ],
)
def test_a_bad_members_spec_is_refused_naming_the_member(members, problem):
    for name in ("ensemble_vote", "ensemble_performance"):
        with pytest.raises(ConfigError, match=problem):
            make_strategy(name, {"members": members})


def test_a_performance_lookback_below_one_is_refused():
    with pytest.raises(ConfigError, match="ensemble_performance needs lookback >= 1, got 0"):
        make_strategy("ensemble_performance", {"lookback": 0})


def test_the_vote_takes_the_side_of_more_than_half_the_members_sized_by_their_mean():
    weights = np.array(
        [
            [0.5, 0.5, 0.5, 0.5, -0.5, 0.2],
            [0.5, 0.0, -0.5, 0.0, -0.5, 0.4],
            [0.0, 0.0, 0.0, -0.5, 0.5, 0.0],
        ]
    )

    np.testing.assert_allclose(majority_vote(weights), [0.5, 0.0, 0.0, 0.0, -0.5, 0.3])


def test_a_tie_or_a_flat_half_votes_flat():
    weights = np.array([[0.5, 0.5], [0.5, 0.5], [-0.5, 0.0], [-0.5, 0.0]])

    np.testing.assert_array_equal(majority_vote(weights), [0.0, 0.0])


def test_the_vote_ensemble_holds_half_where_two_of_its_three_members_agree(bundled_bars):
    panels = _member_panels(bundled_bars, MEMBERS)
    longs = sum((p > 0).astype(int) for p in panels)
    shorts = sum((p < 0).astype(int) for p in panels)
    expected = 0.5 * (longs >= 2) - 0.5 * (shorts >= 2)

    weights = VoteEnsemble(members=MEMBERS).target_weights(bundled_bars)

    got = weights.pivot(index="time", columns="symbol", values="weight")
    pd.testing.assert_frame_equal(got, expected.astype(float))
    assert set(np.unique(got)) == {-0.5, 0.0, 0.5}


def test_the_performance_ensemble_blends_by_positive_trailing_return_like_pandas(bundled_bars):
    lookback = 63
    panels = _member_panels(bundled_bars, MEMBERS)
    change = bundled_bars.pivot(index="time", columns="symbol", values="close").pct_change()
    scores = pd.concat(
        [(p.shift(1) * change).sum(axis=1).rolling(lookback).sum() for p in panels], axis=1
    )
    positive = scores.clip(lower=0.0)
    shares = positive.div(positive.sum(axis=1), axis=0).fillna(0.0)
    expected = sum(p.mul(shares[i], axis=0) for i, p in enumerate(panels))

    weights = PerformanceEnsemble(members=MEMBERS, lookback=lookback).target_weights(bundled_bars)

    got = weights.pivot(index="time", columns="symbol", values="weight")
    pd.testing.assert_frame_equal(got, expected, rtol=0, atol=1e-9)
    assert (got.iloc[: lookback - 1] == 0).all().all()
    assert got.abs().sum(axis=1).max() <= 1.0 + 1e-12


def test_warmups_cover_the_oldest_member_weight_a_decision_uses():
    assert VoteEnsemble(members=MEMBERS).warmup == make_strategy("macd_trend", {}).warmup
    assert PerformanceEnsemble(members=MEMBERS, lookback=20).warmup == 350 + 20


@pytest.mark.parametrize("name", ["ensemble_vote", "ensemble_performance"])
def test_ensembles_pass_the_look_ahead_check(bundled_bars, name):
    strategy = make_strategy(name, {"members": MEMBERS})
    times = np.sort(bundled_bars["time"].unique())
    cuts = [pd.Timestamp(times[i]) for i in (200, 420, 2_500, 4_999)]

    assert look_ahead_violations(strategy, bundled_bars, cuts) == []


def test_a_window_of_warmup_plus_one_bars_gives_the_whole_historys_weights(bundled_bars):
    strategy = PerformanceEnsemble(members=MEMBERS, lookback=40)
    full = strategy.target_weights(bundled_bars).set_index(["time", "symbol"])["weight"]
    times = np.sort(bundled_bars["time"].unique())

    for time in times[strategy.warmup :: 211]:
        history = bundled_bars[bundled_bars["time"] <= time]
        window = history.groupby("symbol").tail(strategy.warmup + 1)
        cut = strategy.target_weights(window)
        now = cut[cut["time"] == time].set_index(["time", "symbol"])["weight"]
        pd.testing.assert_series_equal(now, full.loc[now.index], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ensemble_vote", "ensemble_performance"])
def test_the_pyfunc_model_rebuilds_the_ensemble_from_its_flat_parameters(
    bundled_bars, tmp_path, name
):
    strategy = make_strategy(name, {"members": MEMBERS})
    params = strategy_params(strategy)
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=StrategyModel(strategy.name, params),
        pip_requirements=["mlflow"],
    )

    weights = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(bundled_bars)

    assert all(isinstance(v, str | int) for v in params.values())
    pd.testing.assert_frame_equal(weights, strategy.target_weights(bundled_bars))
