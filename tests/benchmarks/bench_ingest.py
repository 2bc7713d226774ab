"""Loading bars: Prism's batched COPY-upsert against executemany INSERT ... ON CONFLICT, and
keeping the 1h/1d rollups fresh after an ingest.

One million synthetic minute bars (10 symbols x 100,000, fixed seed), loaded into an empty table
(new rows) and loaded again when every row already exists (a full-conflict reload). The peer
runs the same upsert (skipping unchanged rows, as Prism does) through SQLAlchemy's raw psycopg
connection, ``executemany`` in 10k-row batches; at ~25k rows/s a full 1M-row run would take
~40 s per case, so it is timed on a fixed sample (every 10th bar) and scaled to 1M rows.

Rollups: with the 1M bars stored, bringing the 1h and 1d rollups up to date after an ingest of
the newest hour of every symbol. Prism recomputes only the buckets that hour falls in (plain
PostgreSQL mode); the peer is what migration 0005 first did, ``REFRESH MATERIALIZED VIEW
CONCURRENTLY`` of the same two rollups defined as materialized views, which recomputes them
from the whole history.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from prism.data.bars import BAR_COLUMNS
from prism.data.store import upsert_bars
from prism.db import embedded
from prism.db.bars import CHUNK_INTERVALS, PRICES, bars_storage, price_units
from prism.db.engine import sqlalchemy_url
from prism.db.migrate import upgrade
from tests.benchmarks.measure import Measurement, measure
from tests.benchmarks.row import Row
from tests.benchmarks.synthetic import random_walk_bars

SYMBOLS = 10
BARS_PER_SYMBOL = 100_000
ROWS = SYMBOLS * BARS_PER_SYMBOL
SAMPLE_EVERY = 10
PEER = "SQLAlchemy executemany INSERT ON CONFLICT, 10k-row batches"
ROLLUP_PEER = "REFRESH MATERIALIZED VIEW CONCURRENTLY (1h and 1d)"
MATVIEW = """
CREATE MATERIALIZED VIEW market_data.peer_{name} AS
SELECT symbol, date_bin('{width}', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time,
       (array_agg(open ORDER BY time))[1] AS open, max(high) AS high, min(low) AS low,
       (array_agg(close ORDER BY time DESC))[1] AS close, sum(volume) AS volume,
       count(*) AS bars
FROM market_data.ohlcv WHERE timeframe = '1m' GROUP BY 1, 2;
CREATE UNIQUE INDEX ON market_data.peer_{name} (symbol, time);
"""


def _executemany(engine: Engine, bars: pd.DataFrame) -> None:
    """Upsert 1m ``bars`` with executemany into their table, prices as integer units (the same
    encoding, done in the timed call), leaving identical rows alone like Prism does."""
    units = [*(f"{p}_units" for p in PRICES), "price_decimals"]
    columns = ["time", "symbol", "timeframe", *units, "volume", "source"]
    values = [*units, "volume", "source"]
    sql = (
        f"INSERT INTO {bars_storage('1m')} AS o ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (symbol, timeframe, time) "
        f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in values)} "
        f"WHERE ({', '.join(f'o.{c}' for c in values)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in values)})"
    )
    encoded, decimals = price_units(bars[list(PRICES)].to_numpy(), bars["symbol"].to_numpy())
    frame = bars[BAR_COLUMNS].copy()
    frame[list(units)] = pd.DataFrame(
        {**{u: encoded[:, i] for i, u in enumerate(units[:-1])}, units[-1]: decimals},
        index=frame.index,
    )
    rows = list(frame[columns].itertuples(index=False, name=None))
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for i in range(0, len(rows), 10_000):
                cur.executemany(sql, rows[i : i + 10_000])
        raw.commit()
    finally:
        raw.close()


def _truncate(engine: Engine) -> None:
    """Empty every timeframe's bar table."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(map(bars_storage, CHUNK_INTERVALS))}"))


def _scaled(measurement: Measurement, factor: int) -> Measurement:
    """A sample's measurement scaled to the full row count (time only; memory as traced)."""
    return Measurement(measurement.seconds * factor, measurement.peak_mb)


def _rollup_cases(engine: Engine, bars: pd.DataFrame) -> tuple[Measurement, Measurement]:
    """Time Prism's refresh of the newest hour's buckets against refreshing the views whole."""
    from prism.db.rollups import refresh_rollups

    with engine.begin() as conn:
        for name, width in (("1h", "1 hour"), ("1d", "1 day")):
            conn.execute(text(MATVIEW.format(name=name, width=width)))
    last = bars["time"].max()
    symbols = sorted(bars["symbol"].unique())
    window = (last - pd.Timedelta(minutes=59)).to_pydatetime(), last.to_pydatetime()

    def whole() -> None:
        with engine.begin() as conn:
            for name in ("peer_1h", "peer_1d"):
                conn.execute(text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY market_data.{name}"))

    ours = measure(lambda: refresh_rollups(engine, symbols, *window), runs=3)
    return ours, measure(whole)


def run(notes: list[str]) -> list[Row]:
    """Return one row per case (new rows, full-conflict reload): Prism's and the peer's rate
    and peak memory."""
    from sqlalchemy import create_engine

    bars = random_walk_bars(
        symbols=SYMBOLS, bars=BARS_PER_SYMBOL, timeframe="1m", volatility=0.0005, drift=0.0
    )
    sample = bars.iloc[::SAMPLE_EVERY]
    with tempfile.TemporaryDirectory() as folder:
        pgdata = Path(folder) / "postgres"
        engine = create_engine(sqlalchemy_url(embedded.start(pgdata)))
        try:
            upgrade(engine)
            empty = lambda: _truncate(engine)  # noqa: E731
            prism_new = measure(lambda: upsert_bars(engine, bars), setup=empty)
            prism_again = measure(lambda: upsert_bars(engine, bars))
            rollup_ours, rollup_peer = _rollup_cases(engine, bars)
            peer_again = measure(lambda: _executemany(engine, sample))
            peer_new = measure(lambda: _executemany(engine, sample), setup=empty)
        finally:
            engine.dispose()
            embedded.stop(pgdata)
    notes.append(
        f"ingest: the executemany peer is timed on a fixed {len(sample):,}-row sample (every "
        f"{SAMPLE_EVERY}th bar) and its time scaled x{SAMPLE_EVERY} to {ROWS:,} rows; its peak "
        "memory is the sample's"
    )
    return [
        Row(
            "load 1M new minute bars",
            "rows/s",
            ROWS,
            prism_new,
            _scaled(peer_new, SAMPLE_EVERY),
            PEER,
        ),
        Row(
            "re-load 1M existing minute bars",
            "rows/s",
            ROWS,
            prism_again,
            _scaled(peer_again, SAMPLE_EVERY),
            PEER,
        ),
        Row(
            "refresh 1h/1d rollups after a 1-hour ingest (1M bars stored)",
            "refreshes/s",
            1,
            rollup_ours,
            rollup_peer,
            ROLLUP_PEER,
        ),
    ]
