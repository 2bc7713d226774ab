"""The bar frame: the one shape market data has everywhere in Prism.

A bar frame is a pandas DataFrame with one row per (symbol, timeframe, time)::

    time                       symbol timeframe    open    high     low   close    volume source
    1999-01-04 00:00:00+00:00  SPX    1d        1229.23 1248.81 1219.10 1228.10 8.770e+08 arch
    1999-01-05 00:00:00+00:00  SPX    1d        1228.10 1246.11 1228.10 1244.78 7.750e+08 arch

``time`` is ``datetime64[us, UTC]`` and marks the bar's start (a daily bar is stamped at
midnight UTC of its session date); prices and volume are float64; the rest are strings.
"""

from __future__ import annotations

import pandas as pd

BAR_COLUMNS = ["time", "symbol", "timeframe", "open", "high", "low", "close", "volume", "source"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
TIMEFRAMES = ("1m", "5m", "1h", "1d")


def empty_bars() -> pd.DataFrame:
    """Return a bar frame with no rows and the right dtypes."""
    return normalise(pd.DataFrame({column: [] for column in BAR_COLUMNS}))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the bar columns, in order, with the bar dtypes."""
    out = frame.loc[:, BAR_COLUMNS].copy()
    out["time"] = pd.to_datetime(out["time"], utc=True).astype("datetime64[us, UTC]")
    for column in [*PRICE_COLUMNS, "volume"]:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    for column in ("symbol", "timeframe", "source"):
        out[column] = out[column].astype(str)
    return out.reset_index(drop=True)


def close_panel(bars: pd.DataFrame, column: str = "close") -> pd.DataFrame:
    """Return ``column`` pivoted to a (time × symbol) float64 frame, times ascending."""
    return bars.pivot(index="time", columns="symbol", values=column).sort_index()
