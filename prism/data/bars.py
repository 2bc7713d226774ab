"""The bar frame: the one shape market data has everywhere in Prism.

A bar frame is a pandas DataFrame with one row per (symbol, timeframe, time)::

    time                       symbol timeframe    open    high     low   close    volume source
    1999-01-04 00:00:00+00:00  SPX    1d        1229.23 1248.81 1219.10 1228.10 8.770e+08 arch
    1999-01-05 00:00:00+00:00  SPX    1d        1228.10 1246.11 1228.10 1244.78 7.750e+08 arch

``time`` is ``datetime64[us, UTC]`` and marks the bar's start (a daily bar is stamped at
midnight UTC of its session date); prices and volume are float64; the rest are strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BAR_COLUMNS = ["time", "symbol", "timeframe", "open", "high", "low", "close", "volume", "source"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
TIMEFRAMES = ("1m", "5m", "1h", "1d")
STEPS = {"1m": "1min", "5m": "5min", "1h": "1h", "1d": "1D"}
"""Prism timeframe → pandas frequency of its bar grid."""
INTERVALS = {timeframe: pd.Timedelta(freq) for timeframe, freq in STEPS.items()}
"""How long one bar of each timeframe lasts: a bar stamped ``t`` is closed once ``t + interval``
has passed."""


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


def bar_times(times: pd.Series, timeframe: str, timezone: str = "UTC") -> pd.Series:
    """Return ``times`` as bar-start stamps in UTC, following the bar-frame convention.

    Naive times are read as wall-clock times in ``timezone``; aware times keep their instant.
    A daily bar is stamped at midnight UTC of its session date *in ``timezone``* (so a Yahoo
    bar stamped 09:30 New York time, or a CSV row ``2024-01-02`` in Tokyo time, both land on
    that calendar date); intraday bars keep their instant, converted to UTC.
    """
    stamps = pd.to_datetime(times)
    local = (
        stamps.dt.tz_localize(timezone) if stamps.dt.tz is None else stamps.dt.tz_convert(timezone)
    )
    if timeframe == "1d":
        return local.dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")
    return local.dt.tz_convert("UTC")


def closed_bars(bars: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Return the rows of ``bars`` (the bar frame: ``time`` UTC, ``timeframe``, …) whose interval
    has ended by ``now`` (UTC): a bar still forming (today's daily bar, the current candle) is
    dropped until it closes, so nothing decides on values that will still change."""
    if bars.empty:
        return bars
    ends = bars["time"] + bars["timeframe"].map(INTERVALS)
    return bars[ends <= now].reset_index(drop=True)


def close_panel(bars: pd.DataFrame, column: str = "close") -> pd.DataFrame:
    """Return ``column`` pivoted to a (time × symbol) float64 frame, times ascending."""
    return bars.pivot(index="time", columns="symbol", values=column).sort_index()


@dataclass(frozen=True)
class BarPanel:
    """Bars as (time × symbol) float64 arrays, times ascending, NaN where a symbol has no bar.

    The backtester's input. Pivoting a bar frame costs more than simulating it, so a sweep
    builds the panel once (:meth:`from_bars`) and runs every combination on it.
    """

    times: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_bars(cls, bars: pd.DataFrame) -> BarPanel:
        """Pivot a bar frame of one timeframe into a panel."""
        times, rows = _time_codes(bars["time"])
        columns, symbols = pd.factorize(bars["symbol"], sort=True)
        shape = (len(times), len(symbols))

        def pivot(column: str) -> np.ndarray:
            out = np.full(shape, np.nan)
            out[rows, columns] = bars[column].to_numpy(np.float64)
            return out

        return cls(
            times=times,
            symbols=tuple(str(s) for s in symbols),
            **{c: pivot(c) for c in ("open", "high", "low", "close", "volume")},
        )

    def place(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """Return ``frame[column]`` (a frame with time and symbol columns) laid out on this
        panel's grid; rows at times or symbols the panel lacks are dropped, gaps are NaN."""
        out = np.full(self.close.shape, np.nan)
        rows, columns, found = self._locate(frame)
        out[rows[found], columns[found]] = frame[column].to_numpy(np.float64)[found]
        return out

    def take(self, values: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Return the entries of a panel-shaped array at each row of ``frame`` (time, symbol);
        the inverse of :meth:`place`, NaN for rows off the grid."""
        rows, columns, found = self._locate(frame)
        return np.where(found, values[rows, columns], np.nan)

    def _locate(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stamps = _stamps(frame["time"])
        grid = self.times.asi8
        if not len(grid):
            empty = np.zeros(len(frame), dtype=np.int64)
            return empty, empty, np.zeros(len(frame), dtype=bool)
        rows = np.searchsorted(grid, stamps).clip(0, len(grid) - 1)
        columns = pd.Index(self.symbols).get_indexer(pd.Index(frame["symbol"]))
        found = (columns >= 0) & (grid[rows] == stamps)
        return rows, np.where(found, columns, 0), found

    def frame(self, values: np.ndarray, name: str | None = None) -> pd.DataFrame:
        """Wrap a (time × symbol) array of this panel's shape as a labelled frame."""
        out = pd.DataFrame(values, index=self.times, columns=list(self.symbols))
        out.columns.name = name
        return out

    def since(self, start: pd.Timestamp) -> int:
        """Return the row of the first bar at or after ``start``."""
        return int(self.times.searchsorted(pd.Timestamp(start)))


def _stamps(times: pd.Series) -> np.ndarray:
    """Return bar times as int64 microseconds since the epoch (UTC)."""
    return np.asarray(pd.DatetimeIndex(times).as_unit("us").asi8)


def _time_codes(times: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Return the sorted distinct times and each row's position among them."""
    stamps = _stamps(times)
    if stamps.size and bool(np.all(stamps[1:] > stamps[:-1])):
        unique, rows = stamps, np.arange(stamps.size)
    else:
        unique, rows = np.unique(stamps, return_inverse=True)
    return pd.DatetimeIndex(unique.astype("datetime64[us]"), name="time").tz_localize("UTC"), rows
