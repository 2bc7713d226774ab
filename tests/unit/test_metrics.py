import numpy as np
import pandas as pd
import pytest

from prism import metrics


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
