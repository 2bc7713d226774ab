"""Where bars of each timeframe are stored: one table per timeframe behind ``market_data.ohlcv``,
prices kept as integers.

Each timeframe has its own table (migration 0019), on TimescaleDB a hypertable whose chunk
interval suits how densely its bars come: 20 years of daily bars are three chunks rather than
the 250 they took in 30-day chunks shared with 1m bars, so the runner's newest-bar read plans in
a millisecond and an ingest of long daily history creates a few chunks instead of hundreds.

Prices are stored as integer units (migration 0022): ``open_units ... close_units bigint`` and
``price_decimals smallint``, the price being ``units / 10^price_decimals``. TimescaleDB
compresses float8 with XOR (Gorilla) encoding, which finds few repeated bits in decimal prices
such as 123.45 (about 5.7 compressed bytes per price), while integers get delta-of-delta and
simple8b encoding (under one byte); a per-row ``price_decimals`` is constant within a compressed
segment and costs nearly nothing. Writers choose, per symbol and batch, the fewest decimals
(0..8) that represent every price of the symbol within float round-off (:func:`price_units`),
so a price quoted to the cent reads back bit-identical (dividing an exact integer by an exact
power of ten gives the correctly rounded double). Prices are stored to at most
:data:`MAX_DECIMALS` decimals, as crypto venues quote; finer ones are rounded to 8. Prices so
large that their units would not be exact integers get fewer decimals, and a price beyond
``bigint`` (or a positive one that 8 decimals round to zero) is quarantined by validation.

The physical tables are ``market_data.bars_1m_store`` ... (:func:`bars_storage`): writers, and
TimescaleDB functions that take a hypertable (compression, chunks, sizes, continuous
aggregates), use them. Readers keep float8 ``open/high/low/close``: ``market_data.bars_1m`` ...
(:func:`bars_table`) are plain views computing them, which the planner inlines, so time and
symbol predicates still prune chunks and use the primary key. ``market_data.ohlcv`` is a
``UNION ALL`` view over those with a constant ``timeframe`` per branch, so PostgreSQL plans only
the branch a ``timeframe = '1d'`` filter keeps; rows written into it are converted and routed to
their table by an ``INSTEAD OF`` trigger.
"""

from __future__ import annotations

import numpy as np

from prism.core.errors import ConfigError, DataUnavailable

CHUNK_INTERVALS = {"1m": "30 days", "5m": "90 days", "1h": "365 days", "1d": "3650 days"}
"""Chunk interval of each timeframe's hypertable: about 43,000 1m bars or 2,500 daily bars per
symbol and chunk."""

PRICES = ("open", "high", "low", "close")
MAX_DECIMALS = 8
"""Prices are stored to at most this many decimals (finer ones are rounded)."""
EXACT = 2.0**53
"""Units above this are no longer exact integers in a double: such prices get fewer decimals."""
TOLERANCE = 2.0**-51
"""Relative tolerance within which a price equals its decimal rounding (2 to 4 ulps)."""
LARGEST = 2.0**63
"""Prices whose units would reach this do not fit ``bigint``."""
SMALLEST = 0.5 * 10.0**-MAX_DECIMALS
"""Positive prices below this would be stored as zero."""


def _check(timeframe: str) -> None:
    if timeframe not in CHUNK_INTERVALS:
        raise ConfigError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(CHUNK_INTERVALS)}"
        )


def bars_table(timeframe: str) -> str:
    """Return the view readers query for the bars of ``timeframe`` (float8 prices)."""
    _check(timeframe)
    return f"market_data.bars_{timeframe}"


def bars_storage(timeframe: str) -> str:
    """Return the table (hypertable on TimescaleDB) storing the bars of ``timeframe`` in
    integer units: what writers, compression, chunk listings and sizes address."""
    _check(timeframe)
    return f"market_data.bars_{timeframe}_store"


def price_sql(units: str, decimals: str = "price_decimals") -> str:
    """Return the SQL expression of the float8 price stored as ``units`` and ``decimals``."""
    return f"CAST({units} AS float8) / power(10::float8, {decimals})"


def decimals_needed(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, per price, the fewest decimals (0..8) representing it within :data:`TOLERANCE`
    (8 when none does), and the most decimals its units may have and stay exact integers.

    The SQL functions ``market_data.price_decimals`` and ``market_data.price_scale_limit``
    (migration 0022) compute the same for rows written through ``market_data.ohlcv``.
    """
    size = np.abs(np.asarray(prices, dtype=np.float64))
    flat = size.reshape(-1)
    need = np.full(flat.shape, MAX_DECIMALS, dtype=np.int16)
    todo = np.arange(flat.size)
    with np.errstate(invalid="ignore", over="ignore"):
        for decimals in range(MAX_DECIMALS + 1):
            if not todo.size:
                break
            scale, part = 10.0**decimals, flat[todo]
            fits = np.abs(np.rint(part * scale) / scale - part) <= part * TOLERANCE
            need[todo[fits]] = decimals
            todo = todo[~fits]
        limit = np.full(size.shape, MAX_DECIMALS, dtype=np.int16)
        if not np.all(size * 10.0**MAX_DECIMALS <= EXACT):
            limit[:] = 0
            for d in range(1, MAX_DECIMALS + 1):
                limit += size * 10.0**d <= EXACT
    return need.reshape(size.shape), limit


def price_units(prices: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``prices`` (rows x 4: open, high, low, close) as integer units, with one number
    of decimals per group (``groups`` labels each row, e.g. its symbol): the fewest that
    represent every price of the group, capped so that every unit is an exact integer.

    Returns (units as int64, rows x 4; decimals per row as int16). Raises
    :class:`~prism.core.errors.DataUnavailable` for a price too large for ``bigint``.
    """
    values = np.asarray(prices, dtype=np.float64)
    if values.size and not np.all(np.abs(values) < LARGEST):
        worst = values.flat[int(np.argmax(np.abs(values)))]
        raise DataUnavailable(
            f"price {worst!r} cannot be stored: prices are stored as integer units and must be "
            f"smaller than {LARGEST:.3g} in magnitude"
        )
    need, limit = decimals_needed(values)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    if not codes.size:
        return np.zeros(values.shape, dtype=np.int64), np.zeros(0, dtype=np.int16)
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    most = np.maximum.reduceat(need.max(axis=1)[order], starts)
    least = np.minimum.reduceat(limit.min(axis=1)[order], starts)
    decimals = np.minimum(most, least)[codes]
    scale = 10.0 ** decimals.astype(np.float64)
    return np.rint(values * scale[:, None]).astype(np.int64), decimals
