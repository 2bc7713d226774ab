"""The exploration notebook's return statistics, checked against numbers worked by hand."""

import numpy as np
import pandas as pd
import pytest

from prism.research.exploration import bar_returns, return_statistics


def test_bar_returns_are_log_returns_close_to_close_per_symbol():
    times = pd.date_range("2020-01-01", periods=3, freq="D", tz="UTC")
    bars = pd.DataFrame(
        {
            "time": list(times) * 2,
            "symbol": ["A"] * 3 + ["B"] * 3,
            "close": [100.0, 110.0, 99.0, 50.0, 50.0, 25.0],
        }
    )

    returns = bar_returns(bars)

    assert returns.loc[times[1], "A"] == pytest.approx(np.log(1.1))
    assert returns.loc[times[2], "B"] == pytest.approx(np.log(0.5))
    assert list(returns.index) == list(times[1:])


def test_return_statistics_of_alternating_returns_worked_by_hand():
    returns = pd.DataFrame({"A": [0.01, -0.01] * 50})

    stats = return_statistics(returns).loc["A"]

    assert stats["n"] == 100
    assert stats["annual_mean"] == pytest.approx(0.0, abs=1e-12)
    assert stats["annual_volatility"] == pytest.approx(0.01 * np.sqrt(100 / 99) * np.sqrt(252))
    assert stats["skew"] == pytest.approx(0.0, abs=1e-9)
    assert stats["kurtosis"] == pytest.approx(1.0)
    assert (stats["worst"], stats["best"]) == (-0.01, 0.01)
