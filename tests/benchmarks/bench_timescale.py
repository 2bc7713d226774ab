"""TimescaleDB mode against plain PostgreSQL mode and the usual peers, each pair in one run.

Two fresh workspaces side by side: one in TimescaleDB mode (the default) and one with
``PRISM_TIMESCALEDB=off`` (plain PostgreSQL), both on the embedded server.

- Ingest: 1M new synthetic 1m bars (10 symbols x 100,000) through Prism's ``upsert_bars`` into
  the hypertable, against the same COPY path into plain mode's table, and against SQLAlchemy
  executemany into the hypertable (timed on every 10th bar, scaled x10, as in
  ``bench_ingest``).
- Rollups: with the 1M bars stored and rolled up, one more hour of every symbol stored, then
  the 1h/1d rollups brought up to date: ``refresh_continuous_aggregate`` over the touched
  buckets (TimescaleDB) against the per-bucket upsert of plain mode.
- Storage: bytes per stored bar (``hypertable_size``, indexes included) before and after
  compressing every chunk (segment by symbol and timeframe, order by time descending), of the
  1M synthetic 1m bars and of the real bundled SPX/NDX daily bars; a note says how many bytes
  per bar each column takes compressed. The synthetic prices are rounded to the cent like
  quoted prices. Prices are stored as integer units with a per-row number of decimals
  (migration 0022, :mod:`prism.db.bars`): as doubles each price column kept about 5.7 bytes per
  bar compressed (TimescaleDB's XOR float encoding finds few repeated bits in decimal
  fractions), which held the ratio near 5.4x; as integers they get delta-of-delta and simple8b
  encoding, and the decimals column, constant within a segment, costs nearly nothing.
- Range scan: one year of 50 symbols read back through ``read_bars``, compressed chunks against
  the same chunks uncompressed. The year is of 1h bars (438,000 rows): a year of 1m bars of 50
  symbols (26M rows) would take far longer to load than this benchmark may run.
- Runner reads: ``newest_bar`` over 20 years of daily bars of two symbols ending yesterday, and
  over the bundled SPX/NDX bars (ending 2018, so the recent-window lookup misses and falls back
  to the whole series); and the bundled ingest itself into emptied tables (the best of three,
  so that neither mode pays the process's first imports), TimescaleDB against plain PostgreSQL.

``python -m tests.benchmarks.bench_timescale`` runs it alone.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars, upsert_bars
from prism.db.bars import bars_storage
from prism.db.migrate import database_mode
from prism.db.rollups import refresh_rollups
from prism.live.cycle import newest_bar
from tests.benchmarks.bench_ingest import _executemany, _truncate
from tests.benchmarks.measure import Measurement, measure
from tests.benchmarks.row import Row, run_alone
from tests.benchmarks.synthetic import random_walk_bars
from tests.benchmarks.workspace import fresh_workspace

SYMBOLS = 10
BARS_PER_SYMBOL = 100_000
ROWS = SYMBOLS * BARS_PER_SYMBOL
SAMPLE_EVERY = 10
SCAN_SYMBOLS = 50
SCAN_BARS = 365 * 24
PLAIN = "plain PostgreSQL mode, same code"


@dataclass(frozen=True)
class SizeRow:
    """A storage line of the table: bytes per bar compressed against uncompressed."""

    case: str
    compressed: float
    uncompressed: float

    def markdown(self) -> str:
        """Return the row in the benchmark table's columns (smaller is better here)."""
        return (
            f"| {self.case} | {self.compressed:,.1f} B/bar | {self.uncompressed:,.1f} B/bar | "
            f"the same chunks uncompressed | **{self.uncompressed / self.compressed:.1f}x "
            "smaller** | - | - |"
        )


def quoted(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with prices rounded to the cent, as an exchange quotes them (rounding
    keeps low <= open, close <= high)."""
    return bars.assign(**{c: bars[c].round(2) for c in ("open", "high", "low", "close")})


def _timed(action: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> Measurement:
    """One timed run without the extra traced run (the large loads would take twice as long)."""
    setup()
    started = time.perf_counter()
    action()
    return Measurement(time.perf_counter() - started, math.nan)


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def _compress_all(engine: Engine, timeframe: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(
                "SELECT compress_chunk(c, if_not_compressed => true) "
                f"FROM show_chunks('{bars_storage(timeframe)}') c"
            )
        )


def _next_hour(bars: pd.DataFrame) -> pd.DataFrame:
    """The last hour of each symbol's bars moved one hour later: new bars after the stored."""
    last = bars["time"].max()
    hour = bars[bars["time"] > last - pd.Timedelta(hours=1)].copy()
    hour["time"] = hour["time"] + pd.Timedelta(hours=1)
    return hour.reset_index(drop=True)


def _ingest_rows(ts: Engine, pg: Engine, bars: pd.DataFrame, notes: list[str]) -> list[Row]:
    """Time the 1M-bar load in both modes and the executemany peer; leave the bars stored."""
    sample = bars.iloc[::SAMPLE_EVERY]
    peer = _timed(lambda: _executemany(ts, sample), setup=lambda: _truncate(ts))
    ours = _timed(lambda: upsert_bars(ts, bars), setup=lambda: _truncate(ts))
    plain = _timed(lambda: upsert_bars(pg, bars), setup=lambda: _truncate(pg))
    notes.append(
        f"timescale ingest: executemany timed on {len(sample):,} rows (every {SAMPLE_EVERY}th "
        f"bar) into the hypertable, scaled x{SAMPLE_EVERY}; the loads are timed once each"
    )
    scaled = Measurement(peer.seconds * SAMPLE_EVERY, math.nan)
    return [
        Row(
            "TimescaleDB: load 1M new 1m bars into the hypertable",
            "rows/s",
            ROWS,
            ours,
            scaled,
            "SQLAlchemy executemany into the hypertable",
        ),
        Row(
            "TimescaleDB: load 1M new 1m bars (COPY) vs plain table",
            "rows/s",
            ROWS,
            ours,
            plain,
            PLAIN,
        ),
    ]


def _rollup_row(ts: Engine, pg: Engine, bars: pd.DataFrame) -> Row:
    """Time bringing the rollups up to date after one more hour of bars, in both modes."""
    hour = _next_hour(bars)
    symbols = sorted(hour["symbol"].unique())
    window = hour["time"].min().to_pydatetime(), hour["time"].max().to_pydatetime()
    timings = []
    for engine in (ts, pg):
        refresh_rollups(engine)
        upsert_bars(engine, hour)
        timings.append(measure(lambda e=engine: refresh_rollups(e, symbols, *window)))
    return Row(
        "TimescaleDB: refresh 1h/1d continuous aggregates after a 1-hour ingest (1M stored)",
        "refreshes/s",
        1,
        timings[0],
        timings[1],
        "per-bucket upsert rollups, plain PostgreSQL mode",
    )


def _column_bytes(ts: Engine, timeframe: str, rows: int) -> str:
    """Return where the compressed bytes go: each value column's bytes per bar, summed over
    the compressed chunks of ``timeframe``'s table."""
    table = bars_storage(timeframe)
    with ts.connect() as conn:
        relations = conn.execute(
            text(
                "SELECT CAST(cs.compress_relid AS text) "
                "FROM _timescaledb_catalog.compression_settings cs "
                "JOIN _timescaledb_catalog.chunk ch ON ch.relid = cs.relid "
                "WHERE cs.compress_relid IS NOT NULL "
                "AND ch.hypertable_id = (SELECT id FROM _timescaledb_catalog.hypertable "
                "WHERE format('%s.%s', schema_name, table_name) = :table)"
            ),
            {"table": table},
        ).scalars()
        totals = dict.fromkeys(VALUE_COLUMNS, 0)
        for relation in relations:
            sums = ", ".join(f"coalesce(sum(pg_column_size({c})), 0)" for c in VALUE_COLUMNS)
            row = conn.execute(text(f"SELECT {sums} FROM {relation}")).one()
            totals = {c: totals[c] + int(v) for c, v in zip(VALUE_COLUMNS, row, strict=True)}
    return ", ".join(f"{c} {totals[c] / rows:.1f}" for c in VALUE_COLUMNS)


VALUE_COLUMNS = (
    "time",
    "open_units",
    "high_units",
    "low_units",
    "close_units",
    "price_decimals",
    "volume",
    "source",
    "ingested_at",
)


def _size_row(ts: Engine, timeframe: str, rows: int, case: str, notes: list[str]) -> SizeRow:
    """Compress every chunk of the stored ``timeframe`` bars; return bytes per bar before and
    after, and note the compressed bytes per bar of each column."""
    table = bars_storage(timeframe)
    before = _scalar(ts, f"SELECT hypertable_size('{table}')")
    _compress_all(ts, timeframe)
    after = _scalar(ts, f"SELECT hypertable_size('{table}')")
    notes.append(
        f"{case}, compressed bytes per bar by column: {_column_bytes(ts, timeframe, rows)}"
    )
    return SizeRow(case, after / rows, before / rows)


def _scan_row(ts: Engine, notes: list[str]) -> Row:
    """Read a year of 50 symbols' 1h bars uncompressed, compress them, read them again."""
    year = random_walk_bars(symbols=SCAN_SYMBOLS, bars=SCAN_BARS, timeframe="1h", seed=11)
    year["time"] = year["time"] + pd.Timedelta(days=400)
    upsert_bars(ts, year)
    symbols = sorted(year["symbol"].unique())
    span = year["time"].min().to_pydatetime(), year["time"].max().to_pydatetime()

    def scan() -> None:
        read = read_bars(ts, symbols, *span, timeframe="1h")
        assert len(read) == len(year)

    uncompressed = measure(scan, runs=2)
    _compress_all(ts, "1h")
    compressed = measure(scan, runs=2)
    notes.append(
        f"timescale range scan: {SCAN_SYMBOLS} symbols x one year of 1h bars "
        f"({len(year):,} rows), scaled down from 1m bars (26M rows would not load in the time)"
    )
    return Row(
        "TimescaleDB: one-year 50-symbol range scan, compressed chunks",
        "rows/s",
        len(year),
        compressed,
        uncompressed,
        "the same chunks uncompressed",
    )


def _runner_rows(ts: Engine, pg: Engine) -> list[Row]:
    """The bundled ingest and the runner's newest-bar read, TimescaleDB against plain."""
    loads = [
        measure(
            lambda e=engine: ingest(e, ArchBarSource()), runs=3, setup=lambda e=engine: _truncate(e)
        )
        for engine in (ts, pg)
    ]
    bundled = [
        measure(lambda e=engine: newest_bar(e, ["SPX", "NDX"], "1d"), runs=20)
        for engine in (ts, pg)
    ]
    yesterday = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=1)
    daily = random_walk_bars(symbols=2, bars=20 * 365, timeframe="1d", seed=5)
    daily["time"] = daily["time"] + (yesterday - daily["time"].max())
    recent = []
    for engine in (ts, pg):
        upsert_bars(engine, daily)
        recent.append(measure(lambda e=engine: newest_bar(e, ["S000", "S001"], "1d"), runs=20))
    return [
        Row("TimescaleDB: bundled ingest (SPX, NDX daily)", "ingests/s", 1, *loads, PLAIN),
        Row(
            "TimescaleDB: newest-bar read, 20 years of daily bars to yesterday",
            "reads/s",
            1,
            *recent,
            PLAIN,
        ),
        Row(
            "TimescaleDB: newest-bar read, bundled bars (ending 2018: whole-series fallback)",
            "reads/s",
            1,
            *bundled,
            PLAIN,
        ),
    ]


def run(notes: list[str]) -> list[Row | SizeRow]:
    """Return the TimescaleDB rows: each case against plain PostgreSQL mode or its named peer."""
    bars = quoted(
        random_walk_bars(
            symbols=SYMBOLS, bars=BARS_PER_SYMBOL, timeframe="1m", volatility=0.0005, drift=0.0
        )
    )
    notes.append(
        "timescale storage: synthetic prices rounded to the cent, as quoted bars are (random "
        "full-precision doubles compress about 4.4x: XOR encoding finds no repeated bits in "
        "them); the bundled SPX/NDX daily bars are real quotes, in two 10-year chunks"
    )
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        ts, _ = stack.enter_context(fresh_workspace(Path(folder) / "timescale"))
        pg, _ = stack.enter_context(
            fresh_workspace(Path(folder) / "plain", PRISM_TIMESCALEDB="off")
        )
        modes = database_mode(ts), database_mode(pg)
        if modes != ("timescaledb", "postgresql"):
            raise RuntimeError(f"expected TimescaleDB and plain PostgreSQL modes, got {modes}")
        rows: list[Row | SizeRow] = [*_runner_rows(ts, pg)]
        _truncate(ts)
        real = ingest(ts, ArchBarSource()).inserted
        rows.append(
            _size_row(
                ts, "1d", real, "TimescaleDB: storage of the bundled SPX/NDX daily bars", notes
            )
        )
        _truncate(ts)
        _truncate(pg)
        rows += _ingest_rows(ts, pg, bars, notes)
        rows.append(_rollup_row(ts, pg, bars))
        rows.append(
            _size_row(
                ts, "1m", ROWS + len(_next_hour(bars)), "TimescaleDB: storage of 1M 1m bars", notes
            )
        )
        rows.append(_scan_row(ts, notes))
    notes.append(
        "timescale: measured while the machine's 2 cores were shared with other sessions' test runs"
    )
    return rows


if __name__ == "__main__":
    run_alone(run)
