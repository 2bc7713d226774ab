"""Where bars of each timeframe are stored: one table per timeframe behind ``market_data.ohlcv``.

Each timeframe has its own table (``market_data.bars_1m`` ... ``bars_1d``, migration 0019), on
TimescaleDB a hypertable whose chunk interval suits how densely its bars come: 20 years of daily
bars are three chunks rather than the 250 they took in 30-day chunks shared with 1m bars, so the
runner's newest-bar read plans in a millisecond and an ingest of long daily history creates a
few chunks instead of hundreds. ``market_data.ohlcv`` is a ``UNION ALL`` view over the four
tables with a constant ``timeframe`` per branch, so PostgreSQL plans only the branch a
``timeframe = '1d'`` filter keeps; readers keep querying it. Writers that care about speed
(:mod:`prism.data.store`, retention) address the tables directly; rows written into the view
are routed to their table by an ``INSTEAD OF`` trigger.
"""

from __future__ import annotations

from prism.core.errors import ConfigError

CHUNK_INTERVALS = {"1m": "30 days", "5m": "90 days", "1h": "365 days", "1d": "3650 days"}
"""Chunk interval of each timeframe's hypertable: about 43,000 1m bars or 2,500 daily bars per
symbol and chunk."""


def bars_table(timeframe: str) -> str:
    """Return the table holding the bars of ``timeframe``."""
    if timeframe not in CHUNK_INTERVALS:
        raise ConfigError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(CHUNK_INTERVALS)}"
        )
    return f"market_data.bars_{timeframe}"
