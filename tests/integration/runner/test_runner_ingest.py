"""The runner's ``ingest_bars`` step: every enabled deployment's series is brought up to date
from the feed its newest bar came from, and the hours the feed was down are backfilled."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from prism.data.bars import normalise
from prism.data.gaps import RangeSource, find_gaps
from prism.data.sources import Asset
from prism.data.store import ingest
from prism.live import deployments
from prism.live.serving import ingest_deployment_bars

DAY = pd.Timestamp("2024-03-01", tz="UTC")


class HourlyFeed:
    """A ccxt-like feed of ETH/USDT hourly candles for ``hours`` of one day (what the exchange
    answered), each close its hour, so a stored bar shows which answer it came from."""

    name = "ccxt:fake"
    timeframe = "1h"

    def __init__(self, hours: list[int]) -> None:
        self.hours = hours

    def assets(self) -> list[Asset]:
        return [Asset("ETH/USDT", "ETH/USDT", asset_class="crypto", calendar="24/7")]

    def fetch(self) -> pd.DataFrame:
        closes = [100.0 + h for h in self.hours]
        return normalise(
            pd.DataFrame(
                {
                    "time": [DAY + pd.Timedelta(hours=h) for h in self.hours],
                    "symbol": "ETH/USDT",
                    "timeframe": "1h",
                    "open": closes,
                    "high": [c + 1 for c in closes],
                    "low": [c - 1 for c in closes],
                    "close": closes,
                    "volume": 1.0,
                    "source": self.name,
                }
            )
        )


def test_ingest_bars_fetches_new_bars_and_heals_the_hours_the_feed_missed(engine):
    ingest(engine, HourlyFeed([h for h in range(12) if h not in (5, 6)]))
    deployments.upsert_deployment(
        engine, deployments.Deployment("eth", ("ETH/USDT",), "1h", 10_000.0)
    )
    exchange = HourlyFeed(list(range(24)))
    registry = {"ccxt:fake": lambda s, tf, a, b: RangeSource(exchange, s, tf, a, b)}

    done = ingest_deployment_bars(engine, now=DAY + pd.Timedelta(hours=20), registry=registry)

    with engine.connect() as conn:
        closes = conn.execute(
            text("SELECT close FROM market_data.ohlcv WHERE symbol = 'ETH/USDT' ORDER BY time")
        ).scalars()
        stored = [float(c) for c in closes]
    assert done == {"inserted": 9, "healed": 2}
    assert stored == [100.0 + h for h in range(21)]
    assert find_gaps(engine, ["ETH/USDT"], "1h") == []


def test_a_disabled_deployments_series_is_left_alone(engine):
    ingest(engine, HourlyFeed([0, 1, 3]))
    deployments.upsert_deployment(
        engine, deployments.Deployment("eth", ("ETH/USDT",), "1h", 10_000.0, enabled=False)
    )
    registry = {"ccxt:fake": lambda s, tf, a, b: RangeSource(HourlyFeed([2, 4]), s, tf, a, b)}

    done = ingest_deployment_bars(engine, now=DAY + pd.Timedelta(hours=4), registry=registry)

    assert done == {"inserted": 0, "healed": 0}
    assert [g.missing for g in find_gaps(engine, ["ETH/USDT"], "1h")] == [1]
