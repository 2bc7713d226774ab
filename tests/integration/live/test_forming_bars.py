"""The cycle decides on closed bars only: a bar still forming when the cycle runs (today's
daily bar, the current candle) is skipped until its interval ends, and a bar that changes after
a deployment decided on it is a warning in ``audit.system_events``, never a silent rewrite."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import text

from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.live import cycle
from tests.integration.runner_support import FixedSource, deploy

NEW_DAY = pd.Timestamp("2019-01-02", tz="UTC")


class NewDay(ArchBarSource):
    """The bundled bars and one more day, with the closes ``closes`` gives each symbol."""

    def __init__(self, closes: dict[str, float]) -> None:
        self.closes = closes

    def fetch(self) -> pd.DataFrame:
        bars = super().fetch()
        last = bars.sort_values("time").groupby("symbol").tail(1).copy()
        last["time"] = NEW_DAY
        last["close"] = last["symbol"].map(self.closes)
        last["high"] = last[["high", "close"]].max(axis=1)
        last["low"] = last[["low", "close"]].min(axis=1)
        return pd.concat([bars, last], ignore_index=True)


def _corrections(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT severity::text, metadata->>'symbol', metadata->>'deployment' "
                "FROM audit.system_events WHERE event_type = 'bar_corrected_after_decision' "
                "ORDER BY 2"
            )
        ).all()


def test_a_forming_bar_is_not_traded_and_its_correction_after_a_decision_is_audited(
    stocked, settings
):
    deploy(stocked, "daily")
    ingest(stocked, NewDay({"SPX": 2500.0, "NDX": 6600.0}))

    midday = datetime(2019, 1, 2, 15, tzinfo=UTC)
    first = cycle.run_cycle(stocked, settings, "daily", now=midday, source=FixedSource())

    assert first.outcome == "traded"
    assert pd.Timestamp(first.as_of) == pd.Timestamp("2018-12-31", tz="UTC")

    final = NewDay({"SPX": 2510.0, "NDX": 6650.0})
    assert ingest(stocked, final).updated == 2
    assert _corrections(stocked) == [], "nobody had decided on the forming bar"

    next_night = datetime(2019, 1, 3, 1, tzinfo=UTC)
    second = cycle.run_cycle(stocked, settings, "daily", now=next_night, source=FixedSource())
    assert pd.Timestamp(second.as_of) == NEW_DAY

    ingest(stocked, NewDay({"SPX": 2512.0, "NDX": 6650.0}))
    assert _corrections(stocked) == [("warning", "SPX", "daily")]
