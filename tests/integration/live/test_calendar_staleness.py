"""Staleness by the trading calendar: a minute deployment whose last bar is Friday's close is not
stale on Saturday (no bar was due), and is stale once the bars Monday's open should have brought
have not come; only then is there a ``stale_data`` alert."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import text

from prism.data.bars import normalise
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.live import cycle, deployments
from tests.integration.runner_support import CAPITAL, SYMBOLS, FixedSource, loosen_limits

FRIDAY = "2018-12-28"


class FridayMinutes(ArchBarSource):
    """Friday 28 December 2018's regular session (14:30-21:00 UTC) as 1m bars of SPX and NDX, each
    flat at that day's real close: only the bar times matter here."""

    def fetch(self) -> pd.DataFrame:
        daily = super().fetch()
        day = daily[daily["time"] == pd.Timestamp(FRIDAY, tz="UTC")]
        times = pd.date_range(f"{FRIDAY} 14:30", f"{FRIDAY} 20:59", freq="1min", tz="UTC")
        frames = []
        for row in day.itertuples():
            frame = pd.DataFrame({"time": times, "symbol": row.symbol, "timeframe": "1m"})
            for column in ("open", "high", "low", "close"):
                frame[column] = row.close
            frame["volume"] = 1_000.0
            frame["source"] = "test"
            frames.append(frame)
        return normalise(pd.concat(frames, ignore_index=True))


def _stale_alerts(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM audit.system_events WHERE event_type = 'stale_data'")
        ).scalar_one()


def test_a_minute_deployment_is_not_stale_over_the_weekend_but_is_after_the_open(engine, settings):
    ingest(engine, FridayMinutes())
    loosen_limits(engine, "staleness test")
    deployments.upsert_deployment(engine, deployments.Deployment("minutes", SYMBOLS, "1m", CAPITAL))
    saturday = datetime(2018, 12, 29, 12, tzinfo=UTC)

    weekend = cycle.run_cycle(engine, settings, "minutes", now=saturday, source=FixedSource())

    assert weekend.outcome != "stale", weekend.reason
    assert pd.Timestamp(weekend.as_of) == pd.Timestamp(f"{FRIDAY} 20:59", tz="UTC")
    assert _stale_alerts(engine) == 0

    monday = datetime(2018, 12, 31, 14, 40, tzinfo=UTC)  # ten minutes after the open
    late = cycle.run_cycle(engine, settings, "minutes", now=monday, source=FixedSource())

    assert late.outcome == "stale"
    assert "10 bars the trading calendar expected" in late.reason
    assert _stale_alerts(engine) == 1
