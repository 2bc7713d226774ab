"""Bar validation: split a bar frame into accepted rows and rejected rows with reasons.

Rules are small and named; the first rule a row breaks is the one reported. Rejected rows are
never dropped silently: :func:`prism.data.store.ingest` writes them to ``market_data.quarantine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from prism.data.bars import PRICE_COLUMNS, TIMEFRAMES

Rule = Callable[[pd.DataFrame], pd.Series]


def _missing_value(bars: pd.DataFrame) -> pd.Series:
    return bars[["time", *PRICE_COLUMNS, "volume"]].isna().any(axis=1)


def _non_positive_price(bars: pd.DataFrame) -> pd.Series:
    return (bars[PRICE_COLUMNS] <= 0).any(axis=1)


def _negative_volume(bars: pd.DataFrame) -> pd.Series:
    return bars["volume"] < 0


def _high_below_body(bars: pd.DataFrame) -> pd.Series:
    return bars["high"] < bars[["open", "close", "low"]].max(axis=1)


def _low_above_body(bars: pd.DataFrame) -> pd.Series:
    return bars["low"] > bars[["open", "close", "high"]].min(axis=1)


def _unknown_timeframe(bars: pd.DataFrame) -> pd.Series:
    return ~bars["timeframe"].isin(TIMEFRAMES)


def _duplicate_key(bars: pd.DataFrame) -> pd.Series:
    return bars.duplicated(["symbol", "timeframe", "time"], keep="first")


RULES: dict[str, tuple[Rule, str]] = {
    "missing_value": (_missing_value, "time, a price or the volume is missing"),
    "non_positive_price": (_non_positive_price, "a price is zero or negative"),
    "negative_volume": (_negative_volume, "volume is negative"),
    "high_below_body": (_high_below_body, "high is below open, close or low"),
    "low_above_body": (_low_above_body, "low is above open, close or high"),
    "unknown_timeframe": (_unknown_timeframe, f"timeframe is not one of {', '.join(TIMEFRAMES)}"),
    "duplicate_key": (_duplicate_key, "a second row for the same symbol, timeframe and time"),
}


@dataclass(frozen=True)
class Validated:
    """Accepted bars, and rejected bars with ``rule`` and ``reason`` columns added."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame


def validate(bars: pd.DataFrame) -> Validated:
    """Return ``bars`` split by :data:`RULES` into accepted and rejected rows."""
    rule_of_row = pd.Series(pd.NA, index=bars.index, dtype="object")
    for name, (rule, _) in RULES.items():
        broken = rule(bars).fillna(True).astype(bool) & rule_of_row.isna()
        rule_of_row[broken] = name
    rejected_mask = rule_of_row.notna()
    rejected = bars[rejected_mask].copy()
    rejected["rule"] = rule_of_row[rejected_mask].astype(str)
    rejected["reason"] = rejected["rule"].map(lambda name: RULES[name][1])
    return Validated(bars[~rejected_mask].reset_index(drop=True), rejected.reset_index(drop=True))
