import numpy as np
import pandas as pd
import pytest
import vectorbt  # noqa: F401 - registers the .vbt accessor these references use

from prism.backtest import metrics


@pytest.fixture(scope="module")
def equity(bundled_bars) -> pd.Series:
    spx = bundled_bars[bundled_bars["symbol"] == "SPX"].set_index("time")["close"]
    return spx / spx.iloc[0] * 1_000_000


@pytest.fixture(scope="module")
def vbt_returns(equity):
    return equity.pct_change().iloc[1:].vbt.returns(freq="1D", year_freq=pd.Timedelta(days=252))


def test_sharpe_matches_vectorbt(equity, vbt_returns):
    assert metrics.sharpe(equity) == pytest.approx(vbt_returns.sharpe_ratio(), rel=1e-12)


def test_annual_return_matches_vectorbt(equity, vbt_returns):
    assert metrics.annual_return(equity) == pytest.approx(vbt_returns.annualized(), rel=1e-12)


def test_max_drawdown_matches_vectorbt_as_a_positive_fraction(equity, vbt_returns):
    assert metrics.max_drawdown(equity) == pytest.approx(-vbt_returns.max_drawdown(), rel=1e-12)


def test_total_return_matches_vectorbt(equity, vbt_returns):
    assert metrics.total_return(equity) == pytest.approx(vbt_returns.total(), rel=1e-12)


def test_sp500_lost_more_than_half_from_its_2007_peak():
    """Published figure: the S&P 500 fell 56.8% from Oct 2007 to Mar 2009 (closing prices)."""
    from prism.data.sources import ArchBarSource

    bars = ArchBarSource().fetch()
    spx = bars[(bars["symbol"] == "SPX") & (bars["time"].dt.year.between(2007, 2009))]
    assert metrics.max_drawdown(spx.set_index("time")["close"]) == pytest.approx(0.5678, abs=5e-4)


def test_a_flat_curve_has_no_sharpe_and_no_drawdown():
    flat = pd.Series(np.full(10, 100.0))
    assert np.isnan(metrics.sharpe(flat))
    assert metrics.max_drawdown(flat) == 0.0


@pytest.fixture(scope="module")
def simple_returns(equity) -> pd.Series:
    return equity.pct_change().iloc[1:]


def test_annual_volatility_matches_empyrical(equity, simple_returns):
    import empyrical

    assert metrics.annual_volatility(equity) == pytest.approx(
        empyrical.annual_volatility(simple_returns), rel=1e-12
    )


def test_sortino_matches_empyrical(equity, simple_returns):
    import empyrical

    assert metrics.sortino(equity) == pytest.approx(
        empyrical.sortino_ratio(simple_returns), rel=1e-12
    )


def test_calmar_matches_empyrical(equity, simple_returns):
    import empyrical

    assert metrics.calmar(equity) == pytest.approx(empyrical.calmar_ratio(simple_returns), rel=1e-9)


@pytest.mark.parametrize("cutoff", [0.05, 0.01])
def test_historical_var_and_cvar_match_empyrical(equity, simple_returns, cutoff):
    import empyrical

    assert metrics.value_at_risk(equity, cutoff) == pytest.approx(
        empyrical.value_at_risk(simple_returns, cutoff), rel=1e-12
    )
    assert metrics.conditional_value_at_risk(equity, cutoff) == pytest.approx(
        empyrical.conditional_value_at_risk(simple_returns, cutoff), rel=1e-12
    )


def test_parametric_var_and_cvar_of_a_normal_sample_approach_the_closed_form():
    rng = np.random.default_rng(11)
    curve = pd.Series(np.cumprod(1 + rng.normal(0.0005, 0.01, 200_001)))

    assert metrics.parametric_value_at_risk(curve, 0.05) == pytest.approx(
        0.0005 - 1.6448536 * 0.01, abs=1e-4
    )
    assert metrics.parametric_conditional_value_at_risk(curve, 0.05) == pytest.approx(
        0.0005 - 0.01 * 2.0627128, abs=1e-4
    )


def test_drawdown_duration_counts_bars_below_the_last_peak():
    curve = pd.Series([100.0, 110, 105, 100, 111, 90, 95])

    assert metrics.max_drawdown_duration(curve) == 2


def test_round_trips_worked_by_hand():
    trades = pd.DataFrame(
        {
            "symbol": ["A", "A", "A", "A"],
            "quantity": [10.0, -10.0, 5.0, -5.0],
            "price": [100.0, 110.0, 100.0, 90.0],
            "commission": [1.0, 1.0, 0.5, 0.5],
        }
    )

    stats = metrics.trade_statistics(trades)

    assert stats == {
        "round_trips": 2.0,
        "win_rate": 0.5,
        "profit_factor": 98.0 / 51.0,
        "average_trade": (98.0 - 51.0) / 2,
    }
