"""Data health: what is stored, where it has holes, whether its feed is alive, and the gate.

:func:`data_status` describes every (symbol, timeframe) series: first and last bar, bar count,
open gaps, quarantined rows and staleness. Staleness concerns live feeds only (Yahoo, ccxt;
bundled and file data are snapshots that never update): an intraday series with no bar for
:data:`WARN_AFTER` of trading time is a warning, and when no live intraday series has had a bar
for :data:`DOWN_AFTER` the feed itself is down, an error for each of them; a daily series is
stale (a warning) when its last bar is older than the calendar's last completed session. Each
stale series is written to ``audit.system_events``.

:func:`check_quality` is the gate a backtest or a trade cycle passes first: open gaps in the
bars it will read, or a stale feed, raise :class:`~prism.core.errors.DataUnavailable` naming the
symbol and range at fault, unless the caller explicitly allows gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable
from prism.core.events import record_event
from prism.data.bars import INTERVALS
from prism.data.gaps import (
    ALWAYS_OPEN,
    Gap,
    exchange_calendar,
    expected_times,
    find_gaps,
    is_feed,
)
from prism.data.store import bars_source

WARN_AFTER = pd.Timedelta(minutes=5)
"""A live intraday symbol silent this long (in trading time) is a warning."""
DOWN_AFTER = pd.Timedelta(minutes=2)
"""No live intraday symbol with a bar for this long means the feed is down: an error."""
SHOWN_GAPS = 5
"""Gaps named in a refusal; the rest are counted."""


@dataclass(frozen=True)
class SeriesStatus:
    """The health of one (symbol, timeframe) series."""

    symbol: str
    timeframe: str
    calendar: str
    source: str
    first: pd.Timestamp
    last: pd.Timestamp
    bars: int
    gaps: int = 0
    missing: int = 0
    quarantined: int = 0
    staleness: str = "static"
    silent_for: str | None = None
    rollup_from: pd.Timestamp | None = None
    rollup_days: int = 0
    open_gaps: list[Gap] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready values (times in ISO 8601, gaps as ranges)."""
        out = asdict(self)
        out["first"], out["last"] = self.first.isoformat(), self.last.isoformat()
        out["rollup_from"] = None if self.rollup_from is None else self.rollup_from.isoformat()
        out["open_gaps"] = [gap.as_dict() for gap in self.open_gaps]
        return out


_SERIES = text(
    """
    SELECT s.symbol, s.timeframe, coalesce(a.calendar, 'XNYS') AS calendar, s.first, s.last,
           s.bars,
           (SELECT o.source FROM market_data.ohlcv o
            WHERE o.symbol = s.symbol AND o.timeframe = s.timeframe
            ORDER BY o.time DESC LIMIT 1) AS source
    FROM (SELECT symbol, timeframe, min(time) AS first, max(time) AS last, count(*) AS bars
          FROM market_data.ohlcv
          WHERE (CAST(:symbols AS text[]) IS NULL OR symbol = ANY(CAST(:symbols AS text[])))
            AND (CAST(:timeframe AS text) IS NULL OR timeframe = :timeframe)
          GROUP BY symbol, timeframe) s
    LEFT JOIN market_data.assets a USING (symbol)
    ORDER BY s.symbol, s.timeframe
    """
)

_ROLLUP_SPAN = text(
    "SELECT symbol, min(time) AS first, count(*) AS days FROM market_data.ohlcv_1d "
    "WHERE CAST(:symbols AS text[]) IS NULL OR symbol = ANY(CAST(:symbols AS text[])) "
    "GROUP BY symbol"
)
"""The daily rollup's span per symbol: 1m history outlives 1m retention there."""

_QUARANTINED = text(
    "SELECT symbol, coalesce(raw->>'timeframe', '') AS timeframe, count(*) AS n "
    "FROM market_data.quarantine WHERE symbol IS NOT NULL GROUP BY 1, 2"
)


def _utc(moment: datetime | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _now(now: datetime | None) -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC") if now is None else _utc(now)


def _rollup_span(row: Any) -> dict[str, Any]:
    """Return the rollup_from and rollup_days of a 1m series from its row of the daily
    rollup (none when the series is not 1m or has no bucket)."""
    if row is None:
        return {}
    return {"rollup_from": pd.Timestamp(row.first).tz_convert("UTC"), "rollup_days": int(row.days)}


def series_status(
    engine: Engine, symbols: list[str] | None = None, timeframe: str | None = None
) -> list[SeriesStatus]:
    """Return every stored series (or those of ``symbols`` / ``timeframe``) with its span,
    count, source and quarantined rows; a 1m series also with the span of its daily rollup
    (``market_data.ohlcv_1d``), which reaches back further than 1m retention."""
    params = {"symbols": symbols, "timeframe": timeframe}
    with engine.connect() as conn:
        rows = conn.execute(_SERIES, params).mappings().all()
        quarantined = {(r.symbol, r.timeframe): int(r.n) for r in conn.execute(_QUARANTINED)}
        rollups = (
            {r.symbol: r for r in conn.execute(_ROLLUP_SPAN, {"symbols": symbols})}
            if timeframe in (None, "1m")
            else {}
        )
    return [
        SeriesStatus(
            symbol=row["symbol"],
            timeframe=row["timeframe"],
            calendar=row["calendar"],
            source=str(row["source"]),
            first=pd.Timestamp(row["first"]).tz_convert("UTC"),
            last=pd.Timestamp(row["last"]).tz_convert("UTC"),
            bars=int(row["bars"]),
            quarantined=quarantined.get((row["symbol"], row["timeframe"]), 0),
            **_rollup_span(rollups.get(row["symbol"]) if row["timeframe"] == "1m" else None),
        )
        for row in rows
    ]


_NEWEST = """
    SELECT s.symbol, b.time, b.source, coalesce(a.calendar, 'XNYS') AS calendar
    FROM (SELECT DISTINCT unnest(CAST(:symbols AS text[])) AS symbol) s
    CROSS JOIN LATERAL (
        SELECT o.time, o.source FROM {table} o
        WHERE o.symbol = s.symbol AND o.timeframe = :timeframe
        ORDER BY o.time DESC LIMIT 1
    ) b
    LEFT JOIN market_data.assets a ON a.symbol = s.symbol
    ORDER BY s.symbol
"""


def _newest(engine: Engine, symbols: list[str], timeframe: str) -> list[SeriesStatus]:
    """Return each series of ``symbols`` / ``timeframe`` with only what staleness is judged on
    (calendar, source and time of its newest bar), from one index lookup per symbol instead of
    :func:`series_status`'s scan of every bar; ``first`` and ``bars`` are not filled in."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(_NEWEST.format(table=bars_source(timeframe))),
            {"symbols": symbols, "timeframe": timeframe},
        ).all()
    return [
        SeriesStatus(
            symbol=str(symbol),
            timeframe=timeframe,
            calendar=str(calendar),
            source=str(source),
            first=pd.Timestamp(time).tz_convert("UTC"),
            last=pd.Timestamp(time).tz_convert("UTC"),
            bars=0,
        )
        for symbol, time, source, calendar in rows
    ]


def feed_staleness(
    engine: Engine, symbols: list[str], timeframe: str, now: datetime | None = None
) -> list[SeriesStatus]:
    """Return each series of ``symbols`` / ``timeframe`` with its staleness judged at ``now``
    (default: the wall clock) from its newest bar alone: one index lookup per symbol, cheap
    enough for a readiness probe or a pre-check (``first`` and ``bars`` are not filled in)."""
    return with_staleness(_newest(engine, symbols, timeframe), _now(now))


def missed_bars(
    engine: Engine, symbols: list[str], timeframe: str, newest: datetime, now: datetime
) -> int:
    """Return how many ``timeframe`` bars after ``newest`` the symbols' trading calendars
    expected to have closed by ``now`` (the most any one calendar expects; a symbol without an
    asset row trades on XNYS). Zero over a night, a weekend or a holiday, when no bar was due,
    so a runner judging staleness by it raises nothing while the market is closed."""
    with engine.connect() as conn:
        calendars = set(
            conn.execute(
                text(
                    "SELECT coalesce(a.calendar, 'XNYS') "
                    "FROM unnest(CAST(:s AS text[])) AS s(symbol) "
                    "LEFT JOIN market_data.assets a USING (symbol)"
                ),
                {"s": symbols},
            ).scalars()
        )
    step = INTERVALS[timeframe]
    first, last = pd.Timestamp(newest) + step, pd.Timestamp(now) - step
    if timeframe == "1d":
        first, last = first.normalize(), last.normalize()
    return max((len(expected_times(c, timeframe, first, last)) for c in calendars), default=0)


def last_completed_session(calendar: str, now: pd.Timestamp) -> pd.Timestamp | None:
    """Return the midnight-UTC stamp of the newest session of ``calendar`` closed by ``now``."""
    if calendar == ALWAYS_OPEN:
        return now.normalize() - pd.Timedelta(days=1)
    cal = exchange_calendar(calendar)
    closes = cal.closes
    done = closes[closes <= now]
    return None if done.empty else pd.Timestamp(done.index[-1]).tz_localize("UTC")


def silence(status: SeriesStatus, now: pd.Timestamp) -> pd.Timedelta:
    """Return the trading time since the last bar of an intraday series closed."""
    closed = status.last + INTERVALS[status.timeframe]
    if now <= closed:
        return pd.Timedelta(0)
    if status.calendar == ALWAYS_OPEN:
        return now - closed
    cal = exchange_calendar(status.calendar)
    upper = min(now.floor("min"), cal.last_minute)
    if upper <= closed:
        return pd.Timedelta(0)
    minutes = cal.minutes_in_range(closed, upper)
    return pd.Timedelta(minutes=len(minutes))


def with_staleness(statuses: list[SeriesStatus], now: pd.Timestamp) -> list[SeriesStatus]:
    """Return ``statuses`` with staleness judged at ``now`` for live feeds (others: static)."""
    judged: list[SeriesStatus] = []
    quiet: dict[int, pd.Timedelta] = {}
    for index, status in enumerate(statuses):
        if not is_feed(status.source):
            judged.append(status)
        elif status.timeframe == "1d":
            session = last_completed_session(status.calendar, now)
            stale = session is not None and status.last < session
            judged.append(replace(status, staleness="warning" if stale else "ok"))
        else:
            quiet[index] = silence(status, now)
            level = "warning" if quiet[index] > WARN_AFTER else "ok"
            judged.append(replace(status, staleness=level, silent_for=str(quiet[index])))
    if quiet and min(quiet.values()) > DOWN_AFTER:
        for index in quiet:
            judged[index] = replace(judged[index], staleness="error")
    return judged


def record_staleness(engine: Engine, statuses: Iterable[SeriesStatus]) -> int:
    """Write one ``stale_feed`` system event per stale series and episode; return how many
    were written.

    An episode is a series silent since the same last bar at the same severity: asking for
    the status every minute of an outage writes one warning, then one error when it worsens,
    not one event per call.
    """

    stale = [s for s in statuses if s.staleness in ("warning", "error")]
    if not stale:
        return 0
    with engine.connect() as conn:
        known = {
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT metadata ->> 'symbol', metadata ->> 'timeframe', "
                    "metadata ->> 'last', CAST(severity AS text) FROM audit.system_events "
                    "WHERE event_type = 'stale_feed' AND metadata ->> 'last' = ANY(:lasts)"
                ),
                {"lasts": sorted({str(s.last) for s in stale})},
            )
        }
    written = 0
    for status in stale:
        if (status.symbol, status.timeframe, str(status.last), status.staleness) in known:
            continue
        record_event(
            engine,
            "stale_feed",
            status.staleness,
            "data",
            _stale_message(status),
            {"symbol": status.symbol, "timeframe": status.timeframe, "last": status.last},
        )
        written += 1
    return written


def _stale_message(status: SeriesStatus) -> str:
    quiet = f" for {status.silent_for}" if status.silent_for else ""
    return (
        f"{status.symbol} {status.timeframe} from {status.source}: no new bar{quiet} "
        f"since {status.last.isoformat()}"
    )


def data_status(
    engine: Engine, now: datetime | None = None, record: bool = True
) -> list[SeriesStatus]:
    """Return the health of every stored series at ``now`` (default: the wall clock), and,
    if ``record``, write a system event for each stale one."""
    statuses = with_staleness(series_status(engine), _now(now))
    by_series: dict[tuple[str, str], list[Gap]] = {}
    for gap in find_gaps(engine):
        by_series.setdefault((gap.symbol, gap.timeframe), []).append(gap)
    statuses = [
        replace(
            s,
            gaps=len(found),
            missing=sum(g.missing for g in found),
            open_gaps=found,
        )
        for s in statuses
        for found in [by_series.get((s.symbol, s.timeframe), [])]
    ]
    if record:
        record_staleness(engine, statuses)
    return statuses


def quality_problems(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | None = None,
) -> tuple[list[Gap], list[SeriesStatus]]:
    """Return the open gaps of ``symbols`` in ``[start, end]`` and, when ``now`` is given,
    their stale live feeds judged at ``now``."""
    lower, upper = (None if t is None else _utc(t).to_pydatetime() for t in (start, end))
    gaps = find_gaps(engine, symbols, timeframe, lower, upper)
    if now is None:
        return gaps, []
    if symbols:
        quick = feed_staleness(engine, symbols, timeframe, now)
        if not any(s.staleness in ("warning", "error") for s in quick):
            return gaps, []
    judged = with_staleness(series_status(engine, symbols, timeframe), _now(now))
    stale = [s for s in judged if s.staleness in ("warning", "error")]
    return gaps, stale


CLI_ALLOWANCE = "pass --allow-gaps to run on them anyway"


def refusal(gaps: list[Gap], stale: list[SeriesStatus], allowance: str = CLI_ALLOWANCE) -> str:
    """Return the message that names every gap (up to :data:`SHOWN_GAPS`) and stale feed, and
    how to proceed regardless (``allowance``)."""
    parts = []
    if gaps:
        shown = "; ".join(gap.describe() for gap in gaps[:SHOWN_GAPS])
        more = f"; and {len(gaps) - SHOWN_GAPS} more" if len(gaps) > SHOWN_GAPS else ""
        parts.append(f"open gaps: {shown}{more}")
    if stale:
        parts.append("stale feed: " + "; ".join(_stale_message(s) for s in stale))
    return (
        "bad data, refusing to run: "
        + " | ".join(parts)
        + " — run `prism data backfill` (bars from a file: ingest a file that has them), or "
        + allowance
    )


def check_window(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: datetime | str | None,
    end: datetime | str | None,
    allowance: str = CLI_ALLOWANCE,
) -> None:
    """The data-quality gate of a research run (backtest, sweep, notebook): :func:`check_quality`
    over ``[start, end]``, with feeds judged stale at :func:`gate_moment` of ``end``."""
    check_quality(engine, symbols, timeframe, start, end, now=gate_moment(end), allowance=allowance)


def gate_moment(end: datetime | str | None) -> datetime:
    """Return the moment a research run judges feed staleness at: the end of its window, or now
    when the window is open or ends later (a backtest to 2018 is not refused for a feed that
    stopped in 2019)."""
    now = datetime.now(UTC)
    if end is None or end == "":
        return now
    stamp = pd.Timestamp(end)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return min(now, stamp.to_pydatetime())


def check_quality(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | None = None,
    allowance: str = CLI_ALLOWANCE,
) -> None:
    """Raise :class:`DataUnavailable` naming each symbol and range at fault if the bars of
    ``symbols`` in ``[start, end]`` have open gaps, or (with ``now``) a live feed is stale; the
    message ends with ``allowance``, how the caller runs on such bars anyway."""
    gaps, stale = quality_problems(engine, symbols, timeframe, start, end, now)
    if gaps or stale:
        raise DataUnavailable(refusal(gaps, stale, allowance))
