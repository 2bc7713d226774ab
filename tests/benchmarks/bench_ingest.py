"""Loading bars: Prism's COPY-upsert against plain executemany INSERT ... ON CONFLICT."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import Engine, text

from prism.data.bars import BAR_COLUMNS
from prism.data.store import upsert_bars
from prism.db import embedded
from prism.db.engine import sqlalchemy_url
from prism.db.migrate import upgrade
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

ROWS = 200_000


PEER = "executemany INSERT ON CONFLICT, 10k-row batches"


def _executemany(engine: Engine, bars) -> None:  # type: ignore[no-untyped-def]
    sql = (
        f"INSERT INTO market_data.ohlcv ({', '.join(BAR_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(BAR_COLUMNS))}) ON CONFLICT (symbol, timeframe, time) "
        "DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
        "close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source"
    )
    rows = list(bars[BAR_COLUMNS].itertuples(index=False, name=None))
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for i in range(0, len(rows), 10_000):
                cur.executemany(sql, rows[i : i + 10_000])
        raw.commit()
    finally:
        raw.close()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE market_data.ohlcv"))


def run(notes: list[str]) -> list[Row]:
    """Return one row per case: Prism's and the peer's rate and peak memory."""
    from sqlalchemy import create_engine

    bars = random_walk_bars(symbols=40, bars=ROWS // 40)
    with tempfile.TemporaryDirectory() as folder:
        pgdata = Path(folder) / "postgres"
        engine = create_engine(sqlalchemy_url(embedded.start(pgdata)))
        try:
            upgrade(engine)
            results = []
            empty = lambda: _truncate(engine)  # noqa: E731
            prism_new = measure(lambda: upsert_bars(engine, bars), setup=empty)
            prism_again = measure(lambda: upsert_bars(engine, bars))
            peer_new = measure(lambda: _executemany(engine, bars), setup=empty)
            peer_again = measure(lambda: _executemany(engine, bars))
            results.append(Row("load 200k new bars", "rows/s", ROWS, prism_new, peer_new, PEER))
            results.append(
                Row("re-load 200k unchanged bars", "rows/s", ROWS, prism_again, peer_again, PEER)
            )
        finally:
            engine.dispose()
            embedded.stop(pgdata)
    return results
