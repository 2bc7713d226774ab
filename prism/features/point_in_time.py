"""Point-in-time features for ML strategies: every value at bar t uses bars up to t only.

:func:`compute` returns, per (time, symbol): returns over 1, 5 and 20 bars; the standard
deviation of 1-bar returns over 20 bars; volume over its 20-bar mean; close over SMA(50); the
position of the close between the Bollinger bands (0 at the lower, 1 at the upper); ATR(14) and
ADX(14); and the 60-bar beta of 1-bar returns against a benchmark symbol's. Warm-up values are
NaN. :data:`CATALOG` describes each feature; :mod:`prism.features.store` copies it to
``features.catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prism.features.indicators import adx, atr, bollinger, sma


@dataclass(frozen=True)
class Feature:
    """A feature's description, as ``features.catalog`` holds it.

    ``lookback`` is the bars of history before the first non-NaN value; ``computation`` says
    how the value is made (a formula over the bar columns, or the function that computes it);
    ``dependencies`` names the bar columns (and, for beta, the benchmark's) it reads.
    """

    name: str
    description: str
    lookback: int
    category: str = "other"
    dtype: str = "float64"
    computation: str = ""
    dependencies: tuple[str, ...] = ()


CATALOG = (
    Feature(
        "ret_1",
        "simple return over 1 bar",
        1,
        "returns",
        computation="close / close[-1] - 1",
        dependencies=("close",),
    ),
    Feature(
        "ret_5",
        "simple return over 5 bars",
        5,
        "returns",
        computation="close / close[-5] - 1",
        dependencies=("close",),
    ),
    Feature(
        "ret_20",
        "simple return over 20 bars",
        20,
        "returns",
        computation="close / close[-20] - 1",
        dependencies=("close",),
    ),
    Feature(
        "vol_20",
        "sample std of 1-bar returns over 20 bars",
        21,
        "volatility",
        computation="std(ret_1, 20 bars, ddof=1)",
        dependencies=("close",),
    ),
    Feature(
        "volume_ratio_20",
        "volume over its 20-bar mean",
        20,
        "volume",
        computation="volume / prism.features.indicators.sma(volume, 20)",
        dependencies=("volume",),
    ),
    Feature(
        "close_sma_50",
        "close over its 50-bar simple moving average",
        50,
        "trend",
        computation="close / prism.features.indicators.sma(close, 50)",
        dependencies=("close",),
    ),
    Feature(
        "bb_position",
        "close between Bollinger(20, 2) lower (0) and upper (1)",
        20,
        "mean_reversion",
        computation="(close - lower) / (upper - lower), bands from "
        "prism.features.indicators.bollinger(close, 20, 2.0)",
        dependencies=("close",),
    ),
    Feature(
        "atr_14",
        "Wilder's average true range over 14 bars",
        15,
        "volatility",
        computation="prism.features.indicators.atr(high, low, close, 14)",
        dependencies=("high", "low", "close"),
    ),
    Feature(
        "adx_14",
        "Wilder's average directional index over 14 bars",
        28,
        "trend",
        computation="prism.features.indicators.adx(high, low, close, 14)",
        dependencies=("high", "low", "close"),
    ),
    Feature(
        "beta_60",
        "OLS beta of 1-bar returns on the benchmark's over 60 bars",
        61,
        "market",
        computation="cov(ret_1, benchmark ret_1, 60) / var(benchmark ret_1, 60)",
        dependencies=("close", "benchmark.close"),
    ),
)
NAMES = tuple(feature.name for feature in CATALOG)


def _one_symbol(group: pd.DataFrame) -> dict[str, np.ndarray]:
    close = group["close"].to_numpy(np.float64)
    high = group["high"].to_numpy(np.float64)
    low = group["low"].to_numpy(np.float64)
    volume = group["volume"].to_numpy(np.float64)
    series = pd.Series(close)
    upper, _, lower = bollinger(close, 20, 2.0)
    width = upper - lower
    return {
        "ret_1": series.pct_change(1).to_numpy(),
        "ret_5": series.pct_change(5).to_numpy(),
        "ret_20": series.pct_change(20).to_numpy(),
        "vol_20": series.pct_change(1).rolling(20).std(ddof=1).to_numpy(),
        "volume_ratio_20": volume / sma(volume, 20),
        "close_sma_50": close / sma(close, 50),
        "bb_position": np.divide(
            close - lower, width, out=np.full_like(close, np.nan), where=width > 0
        ),
        "atr_14": atr(high, low, close, 14),
        "adx_14": adx(high, low, close, 14),
    }


def _beta(returns: pd.Series, benchmark: pd.Series, window: int) -> pd.Series:
    covariance = returns.rolling(window).cov(benchmark)
    variance = benchmark.rolling(window).var()
    return covariance / variance


def compute(bars: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """Return time, symbol and one float64 column per name in :data:`NAMES`.

    ``bars`` is a bar frame of one timeframe that includes the ``benchmark`` symbol; beta is
    computed on the times both the symbol and the benchmark have a bar.
    """
    ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
    parts = []
    for _, group in ordered.groupby("symbol", sort=False):
        values = pd.DataFrame(_one_symbol(group), index=group.index)
        parts.append(values)
    out = pd.concat([ordered[["time", "symbol"]], pd.concat(parts)], axis=1)
    bench = out.loc[out["symbol"] == benchmark].set_index("time")["ret_1"]
    betas = []
    for _, group in out.groupby("symbol", sort=False):
        aligned = bench.reindex(group["time"]).to_numpy()
        betas.append(
            pd.Series(
                _beta(group["ret_1"].reset_index(drop=True), pd.Series(aligned), 60).to_numpy(),
                index=group.index,
            )
        )
    out["beta_60"] = pd.concat(betas)
    return out[["time", "symbol", *NAMES]]
