"""The Data health page: freshness, open gaps and quarantined rows per symbol and timeframe,
from :func:`prism.data.health.data_status` (read only: nothing is recorded from here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from prism.data.health import data_status
from prism.monitoring.sql import read_frame

COLUMNS = [
    "symbol",
    "timeframe",
    "source",
    "calendar",
    "first",
    "last",
    "age",
    "bars",
    "gaps",
    "missing",
    "quarantined",
    "staleness",
    "silent_for",
]
GAP_COLUMNS = ["symbol", "timeframe", "start", "end", "missing"]


@dataclass(frozen=True)
class HealthReport:
    """Every stored series' health (``series``) and every open gap (``gaps``)."""

    series: pd.DataFrame
    gaps: pd.DataFrame


def data_health(engine: Engine, now: datetime | None = None) -> HealthReport:
    """Return the health of the stored data at ``now`` (default: the wall clock).

    ``series``: one row per (symbol, timeframe): symbol, timeframe, source, calendar, first and
    last bar (UTC), age (now - last bar, Timedelta), bars, gaps (open ranges), missing (bars in
    them), quarantined (rows), staleness (static, ok, warning, error), silent_for.
    ``gaps``: symbol, timeframe, start and end (UTC, ISO text), missing bars.
    """
    statuses = data_status(engine, now, record=False)
    gaps = pd.DataFrame(
        [gap.as_dict() for s in statuses for gap in s.open_gaps], columns=GAP_COLUMNS
    )[GAP_COLUMNS]
    if not statuses:
        return HealthReport(pd.DataFrame({c: [] for c in COLUMNS}), gaps)
    frame = pd.DataFrame([s.as_dict() for s in statuses]).drop(columns="open_gaps")
    for column in ("first", "last"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    clock = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    frame["age"] = clock - frame["last"]
    return HealthReport(frame[COLUMNS], gaps)


def quarantine_by_rule(engine: Engine) -> pd.DataFrame:
    """Return quarantined rows per symbol, timeframe and rule: symbol, timeframe, rule, rows,
    last_received (UTC)."""
    return read_frame(
        engine,
        "SELECT coalesce(symbol, '?') AS symbol, coalesce(raw->>'timeframe', '') AS timeframe, "
        "rule, count(*) AS rows, max(received_at) AS last_received FROM market_data.quarantine "
        "GROUP BY 1, 2, 3 ORDER BY rows DESC, 1, 2, 3",
    )
