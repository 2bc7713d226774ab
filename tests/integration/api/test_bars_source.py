"""The bar route pages either the bars stored for a timeframe or, with ``source=aggregate``, the
1h/1d rollup of the stored 1m bars (a series loaded as minutes has no stored hourly bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prism.data.store import ingest
from tests.integration.db.test_platform_schema import FrameSource, minute_bars, resampled


def test_hourly_bars_of_a_minute_series_come_from_the_aggregate(client, auth, engine):
    start = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=2)
    bars = minute_bars(start, days=1, seed=31)
    ingest(engine, FrameSource(bars))
    expected = resampled(bars[bars["symbol"] == "AAA"], "1h")
    params = {"timeframe": "1h", "limit": 10}

    stored = client.get("/api/v1/data/bars/AAA", params=params, headers=auth("viewer"))
    pages, cursor = [], None
    while True:
        query = {**params, "source": "aggregate", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/data/bars/AAA", params=query, headers=auth("viewer"))
        assert page.status_code == 200, page.text
        pages += page.json()["bars"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    minutes = client.get(
        "/api/v1/data/bars/AAA",
        params={"timeframe": "1m", "source": "aggregate"},
        headers=auth("viewer"),
    )

    assert stored.status_code == 200 and stored.json()["bars"] == []
    got = pd.DataFrame(pages)
    assert pd.to_datetime(got["time"], utc=True).tolist() == expected["time"].tolist()
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-12)
    assert set(got["source"]) == {"aggregate"}
    assert minutes.status_code == 400
    assert "rollup" in minutes.json()["detail"] and "'1m'" in minutes.json()["detail"]
