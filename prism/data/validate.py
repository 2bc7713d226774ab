"""Bar validation: split a bar frame into accepted rows, rejected rows with reasons, and flags.

The rules are a pandera schema of named frame-level checks, run lazily so every failure is
collected in one pass; the first rule (in :data:`RULES` order) a row breaks is the one reported.
Rejected rows are never dropped silently: :func:`prism.data.store.ingest` writes them to
``market_data.quarantine``.

A bar that passes every rule but whose close moved more than :data:`MAX_MOVE` from the previous
close of its symbol and timeframe is accepted and *flagged*: its ``review`` column says why, and
it is stored with that reason for a human to look at. The previous close is the bar before it in
the batch, or, for a batch's first bar, the last stored close before it (``previous``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from prism.data.bars import PRICE_COLUMNS, TIMEFRAMES
from prism.db.bars import LARGEST, SMALLEST

Rule = Callable[[pd.DataFrame], pd.Series]
KEY = ["symbol", "timeframe", "time"]
MAX_MOVE = 0.10


def _missing_value(bars: pd.DataFrame) -> pd.Series:
    return bars[["time", *PRICE_COLUMNS, "volume"]].isna().any(axis=1)


def _non_finite_value(bars: pd.DataFrame) -> pd.Series:
    values = bars[[*PRICE_COLUMNS, "volume"]].astype("float64").to_numpy()
    return pd.Series(np.isinf(values).any(axis=1), index=bars.index)


def _non_positive_price(bars: pd.DataFrame) -> pd.Series:
    return (bars[PRICE_COLUMNS] <= 0).any(axis=1)


def _price_too_large(bars: pd.DataFrame) -> pd.Series:
    return (bars[PRICE_COLUMNS].abs() >= LARGEST).any(axis=1)


def _price_too_small(bars: pd.DataFrame) -> pd.Series:
    return (bars[PRICE_COLUMNS] < SMALLEST).any(axis=1)


def _negative_volume(bars: pd.DataFrame) -> pd.Series:
    return bars["volume"] < 0


def _high_below_body(bars: pd.DataFrame) -> pd.Series:
    return bars["high"] < bars[["open", "close", "low"]].max(axis=1)


def _low_above_body(bars: pd.DataFrame) -> pd.Series:
    return bars["low"] > bars[["open", "close", "high"]].min(axis=1)


def _unknown_timeframe(bars: pd.DataFrame) -> pd.Series:
    return ~bars["timeframe"].isin(TIMEFRAMES)


def _future_time(bars: pd.DataFrame) -> pd.Series:
    return bars["time"] > pd.Timestamp.now(tz="UTC")


def _duplicate_key(bars: pd.DataFrame) -> pd.Series:
    return bars.duplicated(KEY, keep="first")


RULES: dict[str, tuple[Rule, str]] = {
    "missing_value": (_missing_value, "time, a price or the volume is missing"),
    "non_finite_value": (
        _non_finite_value,
        "a price or the volume is infinite (a number too large for float64)",
    ),
    "non_positive_price": (_non_positive_price, "a price is zero or negative"),
    "price_too_large": (
        _price_too_large,
        f"a price is {LARGEST:.3g} or more: prices are stored as integer units (bigint)",
    ),
    "price_too_small": (
        _price_too_small,
        f"a price is below {SMALLEST:.0e}: prices are stored to at most 8 decimals",
    ),
    "negative_volume": (_negative_volume, "volume is negative"),
    "high_below_body": (_high_below_body, "high is below open, close or low"),
    "low_above_body": (_low_above_body, "low is above open, close or high"),
    "unknown_timeframe": (_unknown_timeframe, f"timeframe is not one of {', '.join(TIMEFRAMES)}"),
    "future_time": (_future_time, "the bar's time is in the future"),
    "duplicate_key": (_duplicate_key, "a second row for the same symbol, timeframe and time"),
}


def _passes(rule: Rule) -> Callable[[pd.DataFrame], pd.Series]:
    """Turn a rule (True where broken) into a pandera check (True where passed); NaN breaks."""
    return lambda bars: ~rule(bars).fillna(True).astype(bool)


SCHEMA = pa.DataFrameSchema(
    checks=[
        pa.Check(_passes(rule), name=name, error=reason, ignore_na=False)
        for name, (rule, reason) in RULES.items()
    ],
)


@dataclass(frozen=True)
class Validated:
    """Accepted bars (with a ``review`` column: the flag's reason, or None), and rejected bars
    with ``rule`` and ``reason`` columns added."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def flagged(self) -> int:
        """How many accepted bars are flagged for review."""
        return int(self.accepted["review"].notna().sum())


def validate(
    bars: pd.DataFrame,
    previous: pd.DataFrame | None = None,
    calendars: dict[str, str] | None = None,
) -> Validated:
    """Return ``bars`` split by :data:`RULES` into accepted and rejected rows, the accepted ones
    flagged where the close moved more than :data:`MAX_MOVE`, or where a daily bar falls on a
    day its symbol's trading calendar (``calendars``: symbol to exchange_calendars name) has no
    session, such as an exchange holiday.

    ``previous`` (columns symbol, timeframe, close) holds the last stored close before the batch
    of each symbol and timeframe; without it a batch's first bar is compared with nothing.
    """
    rule_of_row = _broken_rules(bars.reset_index(drop=True))
    rejected_mask = rule_of_row.notna().to_numpy()
    frame = bars.reset_index(drop=True)
    rejected = frame[rejected_mask].copy()
    rejected["rule"] = rule_of_row[rejected_mask].astype(str)
    rejected["reason"] = rejected["rule"].map(lambda name: RULES[name][1])
    accepted = frame[~rejected_mask].reset_index(drop=True)
    moves = _review(accepted, previous)
    off = _off_calendar(accepted, calendars or {})
    accepted["review"] = pd.Series(
        [move if move is not None else day for move, day in zip(moves, off, strict=True)],
        index=accepted.index,
        dtype=object,
    )
    return Validated(accepted, rejected.reset_index(drop=True))


def _broken_rules(bars: pd.DataFrame) -> pd.Series:
    """Return, per row, the name of the first rule it breaks (NA where it breaks none)."""
    rule_of_row = pd.Series(pd.NA, index=bars.index, dtype="object")
    try:
        SCHEMA.validate(bars, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index", "check_number"])
        first = cases.sort_values("check_number", kind="stable").drop_duplicates("index")
        names = np.array(list(RULES), dtype=object)
        rows = first["index"].astype("int64").to_numpy()
        rule_of_row.loc[rows] = names[first["check_number"].astype("int64").to_numpy()]
    return rule_of_row


def _review(accepted: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Series:
    """Return each accepted bar's flag: why its close needs review, or None."""
    ordered = accepted.sort_values(KEY, kind="stable")
    prior = ordered.groupby(["symbol", "timeframe"], sort=False)["close"].shift(1)
    if previous is not None and not previous.empty:
        stored = ordered[["symbol", "timeframe"]].merge(
            previous[["symbol", "timeframe", "close"]], on=["symbol", "timeframe"], how="left"
        )["close"]
        prior = prior.fillna(pd.Series(stored.to_numpy(), index=ordered.index))
    move = (ordered["close"] / prior - 1.0).to_numpy()
    big = np.abs(np.nan_to_num(move)) > MAX_MOVE + 1e-12
    review = np.full(len(accepted), None, dtype=object)
    positions = accepted.index.get_indexer(ordered.index[big])
    review[positions] = [
        f"close moved {m:+.1%} from the previous close {p:g}"
        for m, p in zip(move[big], prior.to_numpy()[big], strict=True)
    ]
    return pd.Series(review, index=accepted.index, dtype=object)


def _off_calendar(accepted: pd.DataFrame, calendars: dict[str, str]) -> pd.Series:
    """Return each accepted bar's off-calendar flag: a daily bar dated on a day that is not a
    session of its symbol's calendar (``24/7`` calendars have no such day), or None."""
    from prism.data.calendars import ALWAYS_OPEN, exchange_calendar

    flags = pd.Series([None] * len(accepted), index=accepted.index, dtype=object)
    daily = accepted[accepted["timeframe"] == "1d"]
    for symbol, rows in daily.groupby("symbol", sort=False):
        name = calendars.get(str(symbol))
        if name is None or name == ALWAYS_OPEN:
            continue
        calendar = exchange_calendar(name)
        days = rows["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        inside = (days >= calendar.first_session) & (days <= calendar.last_session)
        sessions = calendar.sessions
        off = inside & ~days.isin(sessions)
        for position, day in days[off].items():
            flags.loc[position] = (
                f"{day:%Y-%m-%d} is not a trading day of {name} (a holiday or weekend)"
            )
    return flags
