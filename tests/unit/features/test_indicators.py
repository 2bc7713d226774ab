import numpy as np
import pandas as pd
import pytest
import talib

from prism.features import indicators
from tests.benchmarks.synthetic import random_walk_bars

TOLERANCE = 1e-9


def _talib_reference(group: pd.DataFrame) -> dict[str, np.ndarray]:
    high, low, close = (group[c].to_numpy() for c in ("high", "low", "close"))
    line, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(close, 20, 2, 2)
    return {
        "sma_20": talib.SMA(close, 20),
        "sma_50": talib.SMA(close, 50),
        "sma_200": talib.SMA(close, 200),
        "ema_12": talib.EMA(close, 12),
        "ema_26": talib.EMA(close, 26),
        "rsi_14": talib.RSI(close, 14),
        "macd": line,
        "macd_signal": signal,
        "macd_hist": hist,
        "atr_14": talib.ATR(high, low, close, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "adx_14": talib.ADX(high, low, close, 14),
    }


@pytest.fixture(scope="module", params=["bundled", "synthetic"])
def bars(request, bundled_bars) -> pd.DataFrame:
    return bundled_bars if request.param == "bundled" else random_walk_bars(5, 3_000)


@pytest.mark.parametrize("name", indicators.INDICATORS)
def test_every_indicator_equals_talib_on_every_symbol(bars, name):
    computed = indicators.compute(bars)

    for symbol, group in bars.sort_values(["symbol", "time"]).groupby("symbol"):
        ours = computed.loc[computed["symbol"] == symbol, name].to_numpy()
        reference = _talib_reference(group)[name]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE, equal_nan=True)


@pytest.mark.parametrize("cut", [250, 1_000, 4_000])
def test_indicator_values_at_a_bar_do_not_depend_on_later_bars(bundled_bars, cut):
    full = indicators.compute(bundled_bars).set_index(["symbol", "time"])
    cut_time = bundled_bars["time"].drop_duplicates().sort_values().iloc[cut]

    partial = indicators.compute(bundled_bars[bundled_bars["time"] <= cut_time])

    pd.testing.assert_frame_equal(
        partial.set_index(["symbol", "time"]), full.loc[partial.set_index(["symbol", "time"]).index]
    )


def test_a_history_shorter_than_the_warmup_is_all_nan():
    short = random_walk_bars(1, 10)

    computed = indicators.compute(short)

    assert computed[list(indicators.INDICATORS)].isna().all().all()
