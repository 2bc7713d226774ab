"""Closing prices for the pages: daily closes from stored daily bars or the 1-day rollup, and
each symbol's newest close.

Long ranges never scan minute bars: a symbol with native ``1d`` bars is read from them, any
other from ``market_data.ohlcv_1d`` (the rollup of its 1m bars). ``daily_closes_raw`` is the
same answer computed straight from the 1m table, the benchmark's peer.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from prism.monitoring.sql import read_frame

_NATIVE = (
    "SELECT time, symbol, close FROM market_data.ohlcv WHERE timeframe = '1d' "
    "AND symbol = ANY(:symbols) AND time >= :start AND time <= :end"
)
_ROLLUP = (
    "SELECT time, symbol, close FROM market_data.ohlcv_1d WHERE symbol = ANY(:symbols) "
    "AND time >= :start AND time <= :end"
)
_RAW = (
    "SELECT date_bin('1 day', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time, symbol, "
    "(array_agg(close ORDER BY time DESC))[1] AS close FROM market_data.ohlcv "
    "WHERE timeframe = '1m' AND symbol = ANY(:symbols) AND time >= :start AND time <= :end "
    "GROUP BY 1, 2"
)
_EARLIEST = datetime(1900, 1, 1)
_LATEST = datetime(2999, 1, 1)


def _bounds(start: datetime | None, end: datetime | None) -> dict[str, datetime]:
    return {"start": start or _EARLIEST, "end": end or _LATEST}


def _pivot(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(dtype=float)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    wide = frame.pivot_table(index="time", columns="symbol", values="close", aggfunc="last")
    wide.columns.name = None
    return wide.sort_index().astype(float)


def daily_closes(
    engine: Engine,
    symbols: list[str],
    start: datetime | None = None,
    end: datetime | None = None,
    raw: bool = False,
) -> pd.DataFrame:
    """Return daily closes: index ``time`` (UTC midnight, ascending), one float64 column per
    symbol found (native 1d bars first, the 1m rollup for the others); empty when none.
    ``raw`` computes the minute-bar symbols' closes from the 1m table instead of the rollup."""
    if not symbols:
        return pd.DataFrame(dtype=float)
    bounds = _bounds(start, end)
    native = read_frame(engine, _NATIVE, symbols=symbols, **bounds)
    rest = sorted(set(symbols) - set(native["symbol"]))
    frames = [native]
    if rest:
        frames.append(read_frame(engine, _RAW if raw else _ROLLUP, symbols=rest, **bounds))
    return _pivot(pd.concat([f for f in frames if not f.empty] or [native], ignore_index=True))


def daily_closes_raw(
    engine: Engine,
    symbols: list[str],
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Return what :func:`daily_closes` returns for minute-bar symbols, computed from the raw
    1m table (no rollup): the benchmark's peer."""
    if not symbols:
        return pd.DataFrame(dtype=float)
    return _pivot(read_frame(engine, _RAW, symbols=symbols, **_bounds(start, end)))


_LAST = """
SELECT s.symbol, b.time, b.close
FROM unnest(CAST(:symbols AS text[])) AS s(symbol)
CROSS JOIN LATERAL (
    SELECT time, close FROM (
        (SELECT time, close, 1 AS rank FROM market_data.ohlcv WHERE symbol = s.symbol
         AND timeframe = '1m' AND time <= :as_of ORDER BY time DESC LIMIT 1)
        UNION ALL
        (SELECT time, close, 2 FROM market_data.ohlcv WHERE symbol = s.symbol
         AND timeframe = '5m' AND time <= :as_of ORDER BY time DESC LIMIT 1)
        UNION ALL
        (SELECT time, close, 3 FROM market_data.ohlcv WHERE symbol = s.symbol
         AND timeframe = '1h' AND time <= :as_of ORDER BY time DESC LIMIT 1)
        UNION ALL
        (SELECT time, close, 4 FROM market_data.ohlcv WHERE symbol = s.symbol
         AND timeframe = '1d' AND time <= :as_of ORDER BY time DESC LIMIT 1)
    ) bars ORDER BY time DESC, rank LIMIT 1
) b
"""


def last_prices(engine: Engine, symbols: list[str], as_of: datetime | None = None) -> pd.DataFrame:
    """Return symbol, time (UTC) and close of each symbol's newest bar of any timeframe at or
    before ``as_of`` (default: now); symbols without bars are left out."""
    if not symbols:
        return pd.DataFrame({"symbol": [], "time": [], "close": []})
    frame = read_frame(engine, _LAST, symbols=symbols, as_of=as_of or _LATEST)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame
