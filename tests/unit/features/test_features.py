import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import talib

from prism.features import point_in_time


@pytest.fixture(scope="module")
def computed(bundled_bars) -> pd.DataFrame:
    return point_in_time.compute(bundled_bars, benchmark="SPX")


def _symbol(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


def test_the_catalog_names_every_column(computed):
    assert list(computed.columns) == ["time", "symbol", *point_in_time.NAMES]


def test_returns_and_volatility_match_their_definitions(bundled_bars, computed):
    ndx, bars = _symbol(computed, "NDX"), _symbol(bundled_bars, "NDX")
    close = bars["close"]

    np.testing.assert_allclose(ndx["ret_5"], close / close.shift(5) - 1, rtol=1e-12)
    daily = close.pct_change()
    expected = [
        daily.iloc[i - 19 : i + 1].std(ddof=1) if i >= 20 else np.nan for i in range(len(daily))
    ]
    np.testing.assert_allclose(ndx["vol_20"], expected, rtol=1e-9)


def test_bollinger_position_and_adx_follow_talib(bundled_bars, computed):
    spx, bars = _symbol(computed, "SPX"), _symbol(bundled_bars, "SPX")
    close = bars["close"].to_numpy()
    upper, _, lower = talib.BBANDS(close, 20, 2, 2)

    np.testing.assert_allclose(spx["bb_position"], (close - lower) / (upper - lower), atol=1e-9)
    np.testing.assert_allclose(
        spx["adx_14"], talib.ADX(bars["high"], bars["low"], close, 14), atol=1e-9
    )


def test_beta_equals_an_ols_slope_on_the_last_60_returns(bundled_bars, computed):
    ndx = _symbol(computed, "NDX")
    spx = _symbol(computed, "SPX")
    at = 3_000

    window = slice(at - 59, at + 1)
    fit = sm.OLS(
        ndx["ret_1"][window].to_numpy(), sm.add_constant(spx["ret_1"][window].to_numpy())
    ).fit()

    assert ndx["beta_60"][at] == pytest.approx(fit.params[1], rel=1e-9)
    assert _symbol(computed, "SPX")["beta_60"].dropna().to_numpy() == pytest.approx(1.0)


@pytest.mark.parametrize("cut", [100, 1_000, 4_500])
def test_every_feature_at_a_bar_is_the_same_on_history_cut_at_that_bar(bundled_bars, computed, cut):
    cut_time = np.sort(bundled_bars["time"].unique())[cut]

    partial = point_in_time.compute(bundled_bars[bundled_bars["time"] <= cut_time], "SPX")

    full = computed.set_index(["time", "symbol"]).loc[partial.set_index(["time", "symbol"]).index]
    pd.testing.assert_frame_equal(partial.set_index(["time", "symbol"]), full, rtol=1e-9)
