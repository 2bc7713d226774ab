import mlflow
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller

from prism.backtest.engine import BacktestConfig, run_backtest, run_bar_by_bar
from prism.backtest.validation import look_ahead_violations
from prism.core.errors import ConfigError
from prism.data.bars import normalise
from prism.strategies import PairsTrading, make_strategy, strategy_params
from prism.strategies.pairs import hold_positions, spread_signals
from prism.strategies.pyfunc import StrategyModel

CONFIG = BacktestConfig(capital=1_000_000.0, commission_bps=5.0, slippage_bps=3.0)
ACTIVE = {"entry_z": 1.5, "adf_pvalue": 0.25}


@pytest.fixture(scope="module")
def stocks() -> pd.DataFrame:
    """CVX, XOM and KO daily closes 2005-2014 from skfolio's S&P 500 set, as a bar frame."""
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset().loc["2005-01-01":"2014-12-31", ["CVX", "XOM", "KO"]]
    long = prices.rename_axis(index="time", columns="symbol").stack().rename("close")
    frame = long.reset_index()
    for column in ("open", "high", "low"):
        frame[column] = frame["close"]
    return normalise(frame.assign(volume=0.0, timeframe="1d", source="skfolio"))


def _log_closes(bars: pd.DataFrame, first: str, second: str) -> tuple[pd.Series, pd.Series]:
    closes = bars.pivot(index="time", columns="symbol", values="close")
    return np.log(closes[first]), np.log(closes[second])


@pytest.mark.parametrize("bar", [59, 1_000, 3_500, 5_030])
def test_hedge_zscore_and_adf_pvalue_match_statsmodels_on_the_same_window(bundled_bars, bar):
    strategy = PairsTrading(first="SPX", second="NDX", lookback=60, adf_lags=1)
    y, x = _log_closes(bundled_bars, "SPX", "NDX")
    window = slice(bar - 59, bar + 1)
    fit = sm.OLS(y.iloc[window].to_numpy(), sm.add_constant(x.iloc[window].to_numpy())).fit()
    spread = pd.Series(y.iloc[window].to_numpy() - fit.params[1] * x.iloc[window].to_numpy())
    stat, pvalue = adfuller(spread, maxlag=1, autolag=None, result_object=False)[:2]

    row = strategy.diagnostics(bundled_bars).iloc[bar]

    assert row["hedge"] == pytest.approx(fit.params[1], rel=1e-10)
    assert row["zscore"] == pytest.approx(
        (spread.iloc[-1] - spread.mean()) / spread.std(), rel=1e-8
    )
    assert row["pvalue"] == pytest.approx(pvalue, rel=1e-8, abs=1e-12)
    del stat


@pytest.mark.parametrize("lags", [0, 1, 4])
def test_every_windows_adf_pvalue_matches_adfuller(stocks, lags):
    strategy = PairsTrading(first="CVX", second="XOM", lookback=40, adf_lags=lags)
    y, x = _log_closes(stocks, "CVX", "XOM")
    diagnostics = strategy.diagnostics(stocks)

    for bar in range(39, len(y), 97):
        window = slice(bar - 39, bar + 1)
        spread = y.iloc[window].to_numpy() - diagnostics["hedge"].iloc[bar] * x.iloc[window]
        expected = adfuller(spread.to_numpy(), maxlag=lags, autolag=None, result_object=False)
        assert diagnostics["pvalue"].iloc[bar] == pytest.approx(expected[1], rel=1e-7, abs=1e-12)


def test_statistics_are_undefined_before_the_first_full_window(bundled_bars):
    diagnostics = PairsTrading(lookback=60).diagnostics(bundled_bars)

    assert diagnostics.iloc[:59].drop(columns="position").isna().all().all()
    assert diagnostics.iloc[59:].notna().all().all()
    assert (diagnostics["position"].iloc[:59] == 0).all()


def test_the_hysteresis_enters_beyond_entry_holds_between_and_exits_inside_exit():
    z = np.array([0.0, 1.0, 2.5, 1.5, 0.7, 0.4, 1.8, -2.2, -1.0, -3.0, 2.1, 0.1, -0.6])
    expected = [0, 0, -1, -1, -1, 0, 0, 1, 1, 1, -1, 0, 0]

    signal = spread_signals(z, np.ones(len(z), dtype=bool), entry_z=2.0, exit_z=0.5)

    assert hold_positions(signal, max_hold=100).tolist() == expected


def test_a_position_lapses_max_hold_bars_after_its_last_signal_or_when_untradable():
    z = np.array([2.5, 1.0, 1.0, 1.0, 1.0, -2.5, -1.0, -1.0, -1.0])
    tradable = np.array([True] * 7 + [False, True])

    signal = spread_signals(z, tradable, entry_z=2.0, exit_z=0.5)

    assert hold_positions(signal, max_hold=2).tolist() == [-1, -1, -1, 0, 0, 1, 1, 0, 0]


def test_weights_are_the_hedged_legs_at_gross_one_and_zero_off_the_pair(stocks):
    strategy = PairsTrading(first="CVX", second="XOM", **ACTIVE)
    diagnostics = strategy.diagnostics(stocks)
    weights = strategy.target_weights(stocks).pivot(index="time", columns="symbol", values="weight")
    position, hedge = diagnostics["position"], diagnostics["hedge"]

    held = position != 0
    assert held.sum() > 100
    expected_first = (position / (1 + hedge.abs())).where(held, 0.0)
    np.testing.assert_allclose(weights["CVX"], expected_first, rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights["XOM"], (-expected_first * hedge).where(held, 0.0))
    np.testing.assert_allclose(weights[["CVX", "XOM"]].abs().sum(axis=1)[held], 1.0)
    assert (weights["KO"] == 0).all()


def test_a_window_of_warmup_plus_one_bars_gives_the_whole_historys_weights(stocks):
    strategy = PairsTrading(first="CVX", second="XOM", lookback=30, max_hold=10, **ACTIVE)
    full = strategy.target_weights(stocks).set_index(["time", "symbol"])["weight"]
    times = np.sort(stocks["time"].unique())

    for time in times[strategy.warmup :: 23]:
        history = stocks[stocks["time"] <= time]
        window = history.groupby("symbol").tail(strategy.warmup + 1)
        cut = strategy.target_weights(window)
        now = cut[cut["time"] == time].set_index(["time", "symbol"])["weight"]
        pd.testing.assert_series_equal(now, full.loc[now.index], rtol=0, atol=1e-12)


def test_the_pair_passes_the_look_ahead_check_and_backtests_the_same_bar_by_bar(stocks):
    strategy = make_strategy("pairs", {"first": "CVX", "second": "XOM", **ACTIVE})
    times = np.sort(stocks["time"].unique())
    cuts = [pd.Timestamp(times[i]) for i in (100, 1_200, 2_400)]
    start = pd.Timestamp("2014-06-02", tz="UTC")

    whole = run_backtest(stocks, strategy, CONFIG, start=start)
    stepped = run_bar_by_bar(stocks, strategy, CONFIG, start=start)

    assert look_ahead_violations(strategy, stocks, cuts) == []
    assert len(whole.trades) > 10
    pd.testing.assert_frame_equal(stepped.trades, whole.trades)
    pd.testing.assert_series_equal(stepped.equity, whole.equity)


def test_the_pyfunc_model_rebuilds_the_pair_and_returns_its_weights(stocks, tmp_path):
    strategy = PairsTrading(first="CVX", second="XOM", **ACTIVE)
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=StrategyModel(strategy.name, strategy_params(strategy)),
        pip_requirements=["mlflow"],
    )

    weights = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(stocks)

    pd.testing.assert_frame_equal(weights, strategy.target_weights(stocks))


def test_a_missing_symbol_is_named_with_the_ones_the_bars_hold(bundled_bars):
    strategy = PairsTrading(first="SPX", second="AAPL")

    with pytest.raises(
        ConfigError, match="symbol\\(s\\) AAPL not in the bars \\(they hold NDX, SPX"
    ):
        strategy.target_weights(bundled_bars)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"second": "SPX"}, "first and second must differ, both are 'SPX'"),
        ({"lookback": 5}, "lookback must be >= 10, got 5"),
        ({"entry_z": 1.0, "exit_z": 1.5}, "needs 0 <= exit_z < entry_z, got exit_z=1.5"),
        ({"adf_pvalue": 0.0}, "adf_pvalue must be in \\(0, 1\\], got 0.0"),
        ({"lookback": 20, "adf_lags": 9}, "adf_lags must be in \\[0, lookback // 2 - 2 = 8\\]"),
        ({"max_hold": 0}, "max_hold must be >= 1, got 0"),
        ({"lookback": 60.5}, "whole number"),
    ],
)
def test_bad_parameters_are_refused_naming_the_problem(params, problem):
    with pytest.raises(ConfigError, match=problem):
        make_strategy("pairs", params)
