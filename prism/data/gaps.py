"""Missing bars: find them against each instrument's trading calendar, and fetch them again.

The expected bars of a (symbol, timeframe) run from its first to its last stored bar along the
calendar in ``market_data.assets.calendar``: an exchange calendar (``XNYS``, ``XLON``, … read
with ``exchange_calendars``) gives one daily bar per session, stamped at midnight UTC of the
session date as :mod:`prism.data.bars` fixes it, and intraday bars at every 1m, 5m or 1h step
from each session's open; ``24/7`` (crypto) expects every step of the clock. Expected minus
stored is grouped into :class:`Gap` ranges of bars consecutive in the expected sequence, so a
weekend or a market holiday is never a gap, and three missing sessions are one range of three.

:func:`backfill` asks each gap's own source (the ``source`` column of the bar before it) for
exactly that range and ingests the answer through :func:`prism.data.store.ingest`, so backfilled
bars are validated and quarantined like any other. Bars read from a file cannot be fetched
again; their gaps are reported as unfillable. :func:`ingest_and_heal` is ingestion followed by
that repair for network sources, so a feed that was down for an hour heals on its next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from prism.core.errors import ConfigError, PrismError
from prism.data.bars import STEPS, TIMEFRAMES, empty_bars
from prism.data.calendars import ALWAYS_OPEN as ALWAYS_OPEN
from prism.data.calendars import CALENDAR_START as CALENDAR_START
from prism.data.calendars import exchange_calendar as exchange_calendar
from prism.data.sources import Asset, BarSource
from prism.data.store import IngestReport, bars_source, ingest


@dataclass(frozen=True)
class Gap:
    """A run of consecutive missing bars: ``start`` and ``end`` are the first and last missing
    bar times (inclusive), ``missing`` how many bars the calendar expected in between."""

    symbol: str
    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp
    missing: int

    def as_dict(self) -> dict[str, Any]:
        """Return the gap as JSON-ready values (times in ISO 8601)."""
        out = asdict(self)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return out

    def describe(self) -> str:
        """Return ``SPX 1d 2018-12-24 … 2018-12-27 (3 bars)``, the form error messages use."""
        first, last = (_shown(t, self.timeframe) for t in (self.start, self.end))
        span = first if self.missing == 1 else f"{first} … {last}"
        return (
            f"{self.symbol} {self.timeframe} {span} ({self.missing} bar{'s' * (self.missing > 1)})"
        )


def _shown(stamp: pd.Timestamp, timeframe: str) -> str:
    return stamp.date().isoformat() if timeframe == "1d" else stamp.isoformat()


def expected_times(
    calendar: str, timeframe: str, first: pd.Timestamp, last: pd.Timestamp
) -> pd.DatetimeIndex:
    """Return the bar times ``calendar`` expects for ``timeframe`` from ``first`` to ``last``."""
    if timeframe not in STEPS:
        raise ConfigError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    if last < first:
        return pd.DatetimeIndex([], tz="UTC")
    if calendar == ALWAYS_OPEN:
        return pd.date_range(first, last, freq=STEPS[timeframe])
    cal = exchange_calendar(calendar)
    if timeframe == "1d":
        sessions = cal.sessions_in_range(first.tz_localize(None), last.tz_localize(None))
        return pd.DatetimeIndex(sessions).tz_localize("UTC")
    day_after = (last.tz_localize(None).normalize() + pd.Timedelta(days=1)).date()
    grid = cal.trading_index(
        first.tz_localize(None).date(),
        day_after,
        STEPS[timeframe],
        intervals=True,
        force_close=True,
    ).left
    return grid[(grid >= first) & (grid <= last)]


_STEP_OF_TIMEFRAME = " ".join(
    f"WHEN '{frame}' THEN interval '{int(pd.Timedelta(freq).total_seconds())} seconds'"
    for frame, freq in STEPS.items()
)
_JUMPS = text(
    f"""
    SELECT s.symbol, s.timeframe, coalesce(a.calendar, 'XNYS') AS calendar,
           (extract(epoch FROM s.time) * 1000000)::bigint AS at,
           (extract(epoch FROM s.next) * 1000000)::bigint AS next,
           s.previous IS NULL AS opens
    FROM (
        SELECT o.symbol, o.timeframe, o.time,
               lag(o.time) OVER w AS previous, lead(o.time) OVER w AS next
        FROM market_data.ohlcv o
        WHERE (CAST(:symbols AS text[]) IS NULL OR o.symbol = ANY(CAST(:symbols AS text[])))
          AND (CAST(:timeframe AS text) IS NULL OR o.timeframe = :timeframe)
          AND (CAST(:start AS timestamptz) IS NULL OR o.time >= CAST(:start AS timestamptz))
          AND (CAST(:end AS timestamptz) IS NULL OR o.time <= CAST(:end AS timestamptz))
        WINDOW w AS (PARTITION BY o.symbol, o.timeframe ORDER BY o.time)
    ) s
    LEFT JOIN market_data.assets a ON a.symbol = s.symbol
    WHERE s.previous IS NULL OR s.next IS NULL
       OR s.next - s.time > CASE s.timeframe {_STEP_OF_TIMEFRAME} END
    ORDER BY 1, 2, 4
    """
)


@dataclass(frozen=True)
class Jumps:
    """One stored series reduced to what its gaps depend on: its first and last bar, and each
    pair of consecutive bars further apart than one step (all as int64 µs since the epoch)."""

    symbol: str
    timeframe: str
    calendar: str
    first: int
    last: int
    after: np.ndarray
    before: np.ndarray


def series_jumps(
    engine: Engine,
    symbols: Iterable[str] | None = None,
    timeframe: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Jumps]:
    """Return the :class:`Jumps` of every stored series (or of ``symbols`` / ``timeframe``),
    counting only bars in ``[start, end]`` when given. The database finds the jumps with one
    window scan, so a few hundred rows per series-year come back, not every bar."""
    params = {
        "symbols": None if symbols is None else list(symbols),
        "timeframe": timeframe,
        "start": start,
        "end": end,
    }
    with engine.connect() as conn:
        rows = conn.execute(_JUMPS, params).all()
    by_series: dict[tuple[str, str, str], list[tuple[int, int | None, bool]]] = {}
    for symbol, frame, calendar, at, following, opens in rows:
        by_series.setdefault((str(symbol), str(frame), str(calendar)), []).append(
            (int(at), None if following is None else int(following), bool(opens))
        )
    found = []
    for (symbol, frame, calendar), marks in by_series.items():
        step = pd.Timedelta(STEPS[frame]).value // 1000
        pairs = [(at, nxt) for at, nxt, _ in marks if nxt is not None and nxt - at > step]
        found.append(
            Jumps(
                symbol,
                frame,
                calendar,
                first=min(at for at, _, opens in marks if opens),
                last=max(at for at, nxt, _ in marks if nxt is None),
                after=np.asarray([at for at, _ in pairs], dtype=np.int64),
                before=np.asarray([nxt for _, nxt in pairs], dtype=np.int64),
            )
        )
    return found


def missing_in_jumps(jumps: Jumps, expected: pd.DatetimeIndex) -> list[Gap]:
    """Return the runs of ``expected`` times that fall strictly inside ``jumps``; runs with
    no expected time stored between them (only an off-calendar bar) are one gap."""
    grid = expected.as_unit("us").asi8
    lower = np.searchsorted(grid, jumps.after, side="right")
    upper = np.searchsorted(grid, jumps.before, side="left")
    holes = upper > lower
    lower, upper = lower[holes], upper[holes]
    if not lower.size:
        return []
    breaks = np.flatnonzero(lower[1:] != upper[:-1])
    firsts = lower[np.concatenate(([0], breaks + 1))]
    ends = upper[np.concatenate((breaks, [upper.size - 1]))]
    return [
        Gap(jumps.symbol, jumps.timeframe, expected[first], expected[end - 1], int(end - first))
        for first, end in zip(firsts.tolist(), ends.tolist(), strict=True)
    ]


def find_gaps(
    engine: Engine,
    symbols: Iterable[str] | None = None,
    timeframe: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Gap]:
    """Return the open gaps of every stored series (or of ``symbols`` / ``timeframe``),
    looking only at bars in ``[start, end]`` when given. Each calendar's expected grid is
    built once per distinct span, so many symbols on one exchange share it."""
    grids: dict[tuple[str, str, int, int], pd.DatetimeIndex] = {}
    gaps: list[Gap] = []
    for jumps in series_jumps(engine, symbols, timeframe, start, end):
        if not jumps.after.size:
            continue
        key = (jumps.calendar, jumps.timeframe, jumps.first, jumps.last)
        if key not in grids:
            first, last = (pd.Timestamp(t, unit="us", tz="UTC") for t in key[2:])
            grids[key] = expected_times(jumps.calendar, jumps.timeframe, first, last)
        gaps.extend(missing_in_jumps(jumps, grids[key]))
    return gaps


SourceFactory = Callable[[str, str, pd.Timestamp, pd.Timestamp], BarSource | None]
"""Builds a source able to fetch one symbol's bars of one timeframe in ``[start, end]``."""


class RangeSource:
    """A source narrowed to one symbol, timeframe and time range: ``fetch`` keeps only those
    bars of the wrapped source's answer, so a backfill writes nothing outside its gap."""

    def __init__(
        self, inner: BarSource, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> None:
        """Wrap ``inner``; its name is kept, so backfilled bars carry their real source."""
        self.inner = inner
        self.name = inner.name
        self.symbol, self.timeframe, self.start, self.end = symbol, timeframe, start, end

    def assets(self) -> list[Asset]:
        """Return the wrapped source's asset for the symbol."""
        return [a for a in self.inner.assets() if a.symbol == self.symbol]

    def fetch(self) -> pd.DataFrame:
        """Return the wrapped source's bars of the symbol, timeframe and range."""
        bars = self.inner.fetch()
        keep = (
            (bars["symbol"] == self.symbol)
            & (bars["timeframe"] == self.timeframe)
            & (bars["time"] >= self.start)
            & (bars["time"] <= self.end)
        )
        return bars[keep].reset_index(drop=True) if len(bars) else empty_bars()


def _after(end: pd.Timestamp, timeframe: str) -> pd.Timestamp:
    """Return the moment the bar starting at ``end`` closes (an exclusive upper bound)."""
    return end + pd.Timedelta(STEPS[timeframe])


def _arch(symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> BarSource:
    # Imported here: arch and skfolio behind it take seconds to import.
    from prism.data.sources import ArchBarSource

    return RangeSource(ArchBarSource(), symbol, timeframe, start, end)


def _skfolio(symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> BarSource:
    # Imported here: arch and skfolio behind it take seconds to import.
    from prism.data.sources import SkfolioBarSource

    return RangeSource(SkfolioBarSource([symbol]), symbol, timeframe, start, end)


def _yahoo(symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> BarSource:
    # Imported here: yfinance behind it takes ~4 s to import.
    from prism.data.yahoo import YahooBarSource

    upper = _after(end, timeframe)
    source = YahooBarSource(
        [symbol],
        timeframe,
        start.date().isoformat() if timeframe == "1d" else start.isoformat(),
        upper.date().isoformat() if timeframe == "1d" else upper.isoformat(),
    )
    return RangeSource(source, symbol, timeframe, start, end)


def _ccxt(exchange: str) -> SourceFactory:
    def build(symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> BarSource:
        # Imported here: ccxt behind it takes ~5 s to import.
        from prism.data.crypto import CcxtBarSource

        source = CcxtBarSource(exchange, [symbol], timeframe, since=start, until=end)
        return RangeSource(source, symbol, timeframe, start, end)

    return build


BACKFILL_SOURCES: dict[str, SourceFactory] = {
    "arch": _arch,
    "skfolio": _skfolio,
    "yahoo": _yahoo,
}
"""Stored source name → how to fetch a range again; ``ccxt:EXCHANGE`` is resolved by prefix,
and any other name (``csv``, ``parquet``) cannot be fetched again."""

NETWORK_SOURCES = ("yahoo", "ccxt:")
"""Prefixes of the live feeds' source names: backfilled after ingestion, checked for staleness."""


def is_feed(source: str) -> bool:
    """Say whether bars of ``source`` come from a live network feed (Yahoo, a ccxt exchange)."""
    return source.startswith(NETWORK_SOURCES)


def source_factory(
    name: str, registry: Mapping[str, SourceFactory] | None = None
) -> SourceFactory | None:
    """Return how to refetch bars stored with source ``name``, or None if nothing can."""
    known = BACKFILL_SOURCES if registry is None else registry
    if name in known:
        return known[name]
    if name.startswith("ccxt:") and registry is None:
        return _ccxt(name.removeprefix("ccxt:"))
    return None


@dataclass(frozen=True)
class BackfillResult:
    """What backfilling one gap did: bars ``filled`` out of ``gap.missing`` and why not all."""

    gap: Gap
    source: str
    filled: int
    reason: str = ""

    @property
    def unfilled(self) -> int:
        """Bars of the gap still missing."""
        return self.gap.missing - self.filled

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready values."""
        return {
            **self.gap.as_dict(),
            "source": self.source,
            "filled": self.filled,
            "unfilled": self.unfilled,
            "reason": self.reason,
        }


def source_before(engine: Engine, gap: Gap) -> str:
    """Return the source of the stored bar just before ``gap`` (its series' feed there)."""
    query = text(
        f"SELECT source FROM {bars_source(gap.timeframe)} WHERE symbol = :symbol "
        "AND timeframe = :timeframe AND time < :start ORDER BY time DESC LIMIT 1"
    )
    params = {"symbol": gap.symbol, "timeframe": gap.timeframe, "start": gap.start}
    with engine.connect() as conn:
        return str(conn.execute(query, params).scalar_one_or_none() or "")


def _count_stored(engine: Engine, gap: Gap) -> int:
    query = text(
        f"SELECT count(*) FROM {bars_source(gap.timeframe)} WHERE symbol = :symbol "
        "AND timeframe = :timeframe AND time BETWEEN :start AND :end"
    )
    params = {"symbol": gap.symbol, "timeframe": gap.timeframe, "start": gap.start, "end": gap.end}
    with engine.connect() as conn:
        return int(conn.execute(query, params).scalar_one())


def backfill_gap(
    engine: Engine, gap: Gap, registry: Mapping[str, SourceFactory] | None = None
) -> BackfillResult:
    """Fetch one gap's range from its source and ingest it; report how much came back."""
    name = source_before(engine, gap)
    factory = source_factory(name, registry)
    if factory is None:
        return BackfillResult(gap, name, 0, f"source {name!r} cannot be fetched again")
    source = factory(gap.symbol, gap.timeframe, gap.start, gap.end)
    if source is None:
        return BackfillResult(gap, name, 0, f"source {name!r} cannot fetch {gap.describe()}")
    try:
        ingest(engine, source)
    except PrismError as err:
        return BackfillResult(gap, name, 0, f"{type(err).__name__}: {err}")
    filled = min(_count_stored(engine, gap), gap.missing)
    reason = "" if filled == gap.missing else f"{name} has no bars for the rest of the range"
    return BackfillResult(gap, name, filled, reason)


def backfill(
    engine: Engine, gaps: Iterable[Gap], registry: Mapping[str, SourceFactory] | None = None
) -> list[BackfillResult]:
    """Fetch exactly each gap's missing range from its source; return one result per gap."""
    return [backfill_gap(engine, gap, registry) for gap in gaps]


def ingest_and_heal(
    engine: Engine, source: BarSource, registry: Mapping[str, SourceFactory] | None = None
) -> tuple[IngestReport, list[BackfillResult]]:
    """Ingest ``source``; if it is a live feed, backfill the open gaps of the symbols and
    timeframe it delivered, so an outage between two runs heals on the second."""
    report = ingest(engine, source)
    if not is_feed(source.name):
        return report, []
    symbols = [asset.symbol for asset in source.assets()]
    timeframe = getattr(source, "timeframe", None)
    return report, backfill(engine, find_gaps(engine, symbols, timeframe), registry)
