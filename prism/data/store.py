"""The OHLCV store: COPY-upserts validated bars, quarantines the rest, and reads bars back.

A load is cut into batches of :data:`BATCH_ROWS` rows, each in its own transaction, so killing
it loses at most the batch in flight and running it again finishes the job (every batch is an
upsert). Rows newer than everything stored for their symbol and timeframe cannot conflict, so
they are COPYed straight into their timeframe's table (:func:`prism.db.bars.bars_storage`, behind
the views ``market_data.bars_<tf>`` and ``market_data.ohlcv`` that reads use); the others go
through a temporary staging table filled by ``COPY`` and one ``INSERT ... ON CONFLICT``. Prices
are stored as integer units with, per symbol and batch, the fewest decimals (0..8) that represent
them (:func:`prism.db.bars.price_units`): stored to at most 8 decimals, as crypto venues quote,
and a price quoted to the cent reads back bit-identical. COPY buffers are CSV written by
polars (the fastest builder measured here: pandas' ``to_csv`` is 20x slower). Rows identical to
the stored ones (compared as the prices they read back as, whatever decimals either was stored
with) are filtered out before the upsert and left untouched, so ingesting the same data twice
leaves exactly the same rows, down to ``ingested_at``.
On TimescaleDB a backfill into compressed chunks (older bars, corrections) takes the same
path: TimescaleDB inserts and updates compressed chunks directly and they stay compressed.

Writing and reading stay in one module (about 470 lines) because both follow the same table
layout and batch rules; the sources and validation live beside it in :mod:`prism.data`.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from prism.core.errors import DataUnavailable
from prism.data.bars import BAR_COLUMNS, empty_bars, normalise
from prism.data.sources import Asset, BarSource
from prism.data.validate import validate
from prism.db.bars import CHUNK_INTERVALS, PRICES, bars_storage, bars_table, price_sql, price_units
from prism.db.rollups import refresh_rollups

BATCH_ROWS = 100_000
STORED_COLUMNS = [*BAR_COLUMNS, "review"]
UNITS = [f"{p}_units" for p in PRICES]
ENCODED_COLUMNS = [
    "time",
    "symbol",
    "timeframe",
    *UNITS,
    "price_decimals",
    "volume",
    "source",
    "review",
]
"""The columns a batch is written with: prices as integer units (:mod:`prism.db.bars`)."""
_STAGING_COLUMNS = (
    "time timestamptz, symbol text, timeframe text, open_units int8, high_units int8, "
    "low_units int8, close_units int8, price_decimals int2, volume float8, source text, "
    "review text"
)


def _compared(alias: str) -> str:
    """The values of a row that decide whether it changed: its prices as they read back, so
    the same price stored with other decimals is the same."""
    prices = [price_sql(f"{alias}.{u}", f"{alias}.price_decimals") for u in UNITS]
    return f"({', '.join([*prices, f'{alias}.volume', f'{alias}.source', f'{alias}.review'])})"


_SET = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in [*UNITS, "price_decimals", "volume", "source", "review"]
)


@dataclass(frozen=True)
class IngestReport:
    """What an ingestion did: rows seen, inserted, updated, left unchanged, flagged for review
    (stored, but with a suspicious move) and quarantined."""

    source: str
    received: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    flagged: int = 0
    rejects: tuple[dict[str, object], ...] = field(default=(), repr=False, compare=False)
    """The quarantined rows themselves (source, symbol, raw as JSON text, rule, reason)."""


_UPSERT = f"""
WITH upserted AS (
    INSERT INTO {{table}} AS o ({", ".join(ENCODED_COLUMNS)})
    SELECT {", ".join(f"s.{c}" for c in ENCODED_COLUMNS)}
    FROM staging_ohlcv s
    LEFT JOIN {{table}} t ON t.symbol = s.symbol AND t.time = s.time
    WHERE s.timeframe = :tf
      AND (t.time IS NULL OR {_compared("t")} IS DISTINCT FROM {_compared("s")})
    ON CONFLICT (symbol, timeframe, time) DO UPDATE SET {_SET}, ingested_at = now()
    WHERE {_compared("o")} IS DISTINCT FROM {_compared("EXCLUDED")}
    RETURNING o.symbol, o.timeframe, o.time,
              {price_sql("o.close_units", "o.price_decimals")} AS close, (xmax = 0) AS inserted
),
corrected AS (
    INSERT INTO audit.system_events (event_type, severity, component, message, metadata)
    SELECT 'bar_corrected_after_decision', 'warning', 'data',
           format('%s %s bar at %s changed after deployment %s decided on it (close now %s)',
                  u.symbol, u.timeframe, u.time, s.deployment, u.close),
           jsonb_build_object('symbol', u.symbol, 'timeframe', u.timeframe, 'time', u.time,
                              'deployment', s.deployment, 'close', u.close)
    FROM upserted u
    JOIN config.strategies s ON s.timeframe = u.timeframe
    WHERE NOT u.inserted AND EXISTS (
        SELECT 1 FROM audit.decisions d
        WHERE d.deployment = s.deployment AND d.time = u.time AND d.symbol = u.symbol
    )
    RETURNING 1
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""
"""Upsert the staged rows of timeframe ``:tf`` that differ from the stored ones into that
timeframe's ``{table}``; a stored bar some deployment
already decided on that changes is not rewritten silently: it is a ``bar_corrected_after_decision``
warning in ``audit.system_events``, in the same transaction."""

_LAST_STORED = """
SELECT k.symbol, k.timeframe,
       (SELECT max(o.time) FROM market_data.ohlcv o
        WHERE o.symbol = k.symbol AND o.timeframe = k.timeframe) AS last
FROM unnest(CAST(:symbols AS text[]), CAST(:timeframes AS text[])) AS k(symbol, timeframe)
"""

_PREVIOUS_CLOSE = """
SELECT k.symbol, k.timeframe, p.close
FROM unnest(CAST(:symbols AS text[]), CAST(:timeframes AS text[]), CAST(:starts AS timestamptz[]))
     AS k(symbol, timeframe, start)
CROSS JOIN LATERAL (
    SELECT o.close FROM market_data.ohlcv o
    WHERE o.symbol = k.symbol AND o.timeframe = k.timeframe AND o.time < k.start
    ORDER BY o.time DESC LIMIT 1
) p
"""


def _copy_csv(conn: Connection, table: str, frame: pl.DataFrame) -> None:
    """COPY ``frame`` (columns in ``table``'s order) into ``table`` as CSV written by polars."""
    payload = frame.write_csv(include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.f%z")
    _copy(conn, f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)", payload)


def _copy(conn: Connection, statement: str, payload: str | bytes) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(statement) as copy:
        copy.write(payload)


def _copy_bars(conn: Connection, table: str, frame: pl.DataFrame) -> None:
    """COPY a frame of :data:`ENCODED_COLUMNS` into ``table`` in PostgreSQL's binary format."""
    statement = f"COPY {table} ({', '.join(ENCODED_COLUMNS)}) FROM STDIN (FORMAT binary)"
    _copy(conn, statement, binary_copy_buffer(frame))


_PG_EPOCH_US = 946_684_800_000_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def binary_copy_buffer(frame: pl.DataFrame) -> bytes:
    """Return a ``COPY ... (FORMAT binary)`` buffer of a frame of :data:`ENCODED_COLUMNS`.

    Within a run of rows sharing symbol, timeframe, source and review every row has the same
    byte length, so each run is one numpy structured array filled column by column: no Python
    loop over rows (building the buffer is several times faster than polars' CSV, and the server
    parses binary faster than text).
    """
    parts = [_COPY_HEADER]
    texts = ["symbol", "timeframe", "source", "review"]
    for key, rows in frame.group_by(texts, maintain_order=True):
        encoded = [None if value is None else str(value).encode() for value in key]
        record = np.empty(rows.height, dtype=_record_dtype(encoded))
        record["fields"] = len(ENCODED_COLUMNS)
        record["time_len"] = 8
        record["time"] = rows["time"].dt.epoch("us").to_numpy() - _PG_EPOCH_US
        for column, binary in _NUMBERS:
            record[f"{column}_len"] = np.dtype(binary).itemsize
            record[column] = rows[column].to_numpy()
        for column, value in zip(texts, encoded, strict=True):
            record[f"{column}_len"] = -1 if value is None else len(value)
            if value is not None:
                record[column] = value
        parts.append(record.tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


_NUMBERS = [*((u, ">i8") for u in UNITS), ("price_decimals", ">i2"), ("volume", ">f8")]
"""The numeric columns of a binary COPY row and their binary types (int8, int2, float8)."""


def _record_dtype(texts: list[bytes | None]) -> np.dtype:
    """The byte layout of one binary COPY row whose text fields are ``texts`` (symbol,
    timeframe, source, review; None is NULL)."""
    symbol, timeframe, source, review = texts
    fields: list[tuple[str, str]] = [("fields", ">i2"), ("time_len", ">i4"), ("time", ">i8")]
    for name, value in (("symbol", symbol), ("timeframe", timeframe)):
        fields += [(f"{name}_len", ">i4"), (name, f"S{len(value or b'')}")]
    for column, binary in _NUMBERS:
        fields += [(f"{column}_len", ">i4"), (column, binary)]
    fields += [("source_len", ">i4"), ("source", f"S{len(source or b'')}"), ("review_len", ">i4")]
    if review is not None:
        fields.append(("review", f"S{len(review)}"))
    return np.dtype(fields)


def _copy_to_staging(conn: Connection, staging: str, columns: str, frame: pl.DataFrame) -> None:
    """Create the temporary table ``staging`` (``columns`` is its SQL column list), COPY
    ``frame`` into it (binary for bars, CSV otherwise) and ANALYZE it, so the planner knows its
    size when joining."""
    conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} ({columns}) ON COMMIT DROP")
    if frame.columns == ENCODED_COLUMNS:
        _copy_bars(conn, staging, frame)
    else:
        _copy_csv(conn, staging, frame)
    conn.exec_driver_sql(f"ANALYZE {staging}")


def _stored_frame(bars: pd.DataFrame) -> pl.DataFrame:
    """Return ``bars`` as a polars frame of the stored columns, sorted by key (sequential index
    inserts are the cheapest); a frame without ``review`` gets an empty one."""
    frame = pl.from_pandas(bars.reindex(columns=STORED_COLUMNS))
    return frame.with_columns(pl.col("review").cast(pl.String)).sort(
        ["symbol", "timeframe", "time"]
    )


def encode_prices(frame: pl.DataFrame) -> pl.DataFrame:
    """Return a frame of :data:`STORED_COLUMNS` as one of :data:`ENCODED_COLUMNS`: prices as
    integer units, with one number of decimals per symbol and timeframe of the frame (see
    :func:`prism.db.bars.price_units`)."""
    groups = frame.select(pl.struct("symbol", "timeframe").rank("dense")).to_series().to_numpy()
    units, decimals = price_units(frame.select(PRICES).to_numpy(), groups)
    encoded = frame.with_columns(
        *(pl.Series(u, units[:, i]) for i, u in enumerate(UNITS)),
        pl.Series("price_decimals", decimals),
    )
    return encoded.select(ENCODED_COLUMNS)


def _keys(frame: pl.DataFrame) -> dict[str, list[str]]:
    keys = frame.select("symbol", "timeframe").unique()
    return {"symbols": keys["symbol"].to_list(), "timeframes": keys["timeframe"].to_list()}


def _split_fresh(engine: Engine, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` into rows newer than every stored bar of their symbol and timeframe
    (they cannot conflict) and the rest, with one query."""
    with engine.connect() as conn:
        rows = conn.execute(text(_LAST_STORED), _keys(frame)).all()
    last = pl.DataFrame(
        rows,
        schema={"symbol": pl.String, "timeframe": pl.String, "last": frame["time"].dtype},
        orient="row",
    )
    marked = frame.join(last, on=["symbol", "timeframe"], how="left").with_columns(
        (pl.col("last").is_null() | (pl.col("time") > pl.col("last"))).alias("fresh")
    )
    fresh = marked.filter(pl.col("fresh")).select(STORED_COLUMNS)
    return fresh, marked.filter(~pl.col("fresh")).select(STORED_COLUMNS)


def _begin_batch(conn: Connection) -> None:
    conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")


def _insert_batch(engine: Engine, batch: pl.DataFrame) -> tuple[int, int]:
    """COPY a batch that cannot conflict straight into the table; should a concurrent writer
    have stored one of its keys meanwhile, upsert it instead."""
    try:
        with engine.begin() as conn:
            _begin_batch(conn)
            for part in encode_prices(batch).partition_by("timeframe"):
                _copy_bars(conn, bars_storage(part["timeframe"][0]), part)
    except IntegrityError:
        return _upsert_batch(engine, batch)
    return batch.height, 0


def _upsert_batch(engine: Engine, batch: pl.DataFrame) -> tuple[int, int]:
    """Stage a batch with COPY and upsert the rows that differ; return (inserted, updated)."""
    with engine.begin() as conn:
        _begin_batch(conn)
        _copy_to_staging(conn, "staging_ohlcv", _STAGING_COLUMNS, encode_prices(batch))
        inserted = updated = 0
        for timeframe in batch["timeframe"].unique().to_list():
            new, changed = conn.execute(
                text(_UPSERT.format(table=bars_storage(timeframe))), {"tf": timeframe}
            ).one()
            inserted, updated = inserted + int(new), updated + int(changed)
    return inserted, updated


@contextmanager
def _progress() -> Iterator[Progress]:
    """A progress bar of stored rows on stderr, shown only when stderr is a terminal."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("storing bars"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        yield bar


def upsert_bars(
    engine: Engine, bars: pd.DataFrame, batch_rows: int = BATCH_ROWS
) -> tuple[int, int]:
    """Store validated ``bars`` in batches of ``batch_rows``, each its own transaction; return
    (inserted, updated) row counts. A ``review`` column, if any, is stored with the bars."""
    if bars.empty:
        return 0, 0
    fresh, known = _split_fresh(engine, _stored_frame(bars))
    inserted = updated = 0
    with _progress() as bar:
        task = bar.add_task("bars", total=len(bars))
        for frame, store in ((known, _upsert_batch), (fresh, _insert_batch)):
            for batch in frame.iter_slices(batch_rows):
                new, changed = store(engine, batch)
                inserted, updated = inserted + new, updated + changed
                bar.advance(task, batch.height)
    return inserted, updated


def previous_closes(engine: Engine, bars: pd.DataFrame) -> pd.DataFrame:
    """Return, per symbol and timeframe of ``bars``, the last stored close before the batch's
    first bar (columns symbol, timeframe, close); pairs with no earlier bar are left out."""
    columns = ["symbol", "timeframe", "close"]
    starts = bars.dropna(subset=["time"]).groupby(["symbol", "timeframe"])["time"].min()
    if starts.empty:
        return pd.DataFrame(columns=columns)
    params = {
        "symbols": [k[0] for k in starts.index],
        "timeframes": [k[1] for k in starts.index],
        "starts": [t.to_pydatetime() for t in starts],
    }
    with engine.connect() as conn:
        rows = conn.execute(text(_PREVIOUS_CLOSE), params).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def quarantine(engine: Engine, source: str, rejected: pd.DataFrame) -> int:
    """Write rejected rows (with ``rule`` and ``reason`` columns) to the quarantine table;
    return how many were rejected.

    A row already quarantined for the same rule (same source and raw payload, e.g. after an
    interrupted load is run again) is stored once: its ``times_seen`` goes up instead."""
    return write_quarantine(engine, quarantine_rows(source, rejected))


def quarantine_rows(source: str, rejected: pd.DataFrame) -> list[dict[str, object]]:
    """Return the quarantine table's rows for ``rejected``, each raw payload strict JSON (an
    infinite value is kept as the text ``"inf"``/``"-inf"``, NaN as null), so that building
    them cannot fail once writing has begun."""
    return [
        {
            "source": source,
            "symbol": str(row.get("symbol")),
            "raw": json.dumps(
                {k: _jsonable(v) for k, v in row.items() if k not in ("rule", "reason")},
                allow_nan=False,
            ),
            "rule": row["rule"],
            "reason": row["reason"],
        }
        for row in rejected.to_dict("records")
    ]


def write_quarantine(engine: Engine, rows: list[dict[str, object]]) -> int:
    """Insert rows built by :func:`quarantine_rows`; return how many."""
    if not rows:
        return 0
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.quarantine (source, symbol, raw, rule, reason) "
                "VALUES (:source, :symbol, CAST(:raw AS jsonb), :rule, :reason) "
                "ON CONFLICT (fingerprint) DO UPDATE SET times_seen = "
                "market_data.quarantine.times_seen + 1, last_seen_at = now()"
            ),
            rows,
        )
    return len(rows)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        if value != value:
            return None
        if not math.isfinite(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def trading_calendars(engine: Engine, assets: list[Asset]) -> dict[str, str]:
    """Return each asset's trading calendar: the source's, else the stored one, else the
    assets table's default (XNYS)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT symbol, calendar FROM market_data.assets WHERE symbol = ANY(:s)"),
            {"s": [a.symbol for a in assets]},
        ).all()
    stored = {str(symbol): str(calendar) for symbol, calendar in rows}
    return {a.symbol: a.calendar or stored.get(a.symbol) or "XNYS" for a in assets}


def upsert_assets(engine: Engine, assets: list[Asset]) -> None:
    """Insert or refresh the assets' reference rows. An asset whose source does not know its
    calendar (``calendar=None``, e.g. a file) keeps the calendar already stored; a new one gets
    the table's default. A file source likewise never overwrites a known asset class."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.assets "
                "(symbol, name, asset_class, exchange, currency, calendar) "
                "VALUES (:symbol, :name, :asset_class, :exchange, :currency, "
                "COALESCE(CAST(:calendar AS text), 'XNYS')) "
                "ON CONFLICT (symbol) DO UPDATE SET name = EXCLUDED.name, "
                "asset_class = CASE WHEN EXCLUDED.asset_class = 'unknown' "
                "THEN market_data.assets.asset_class ELSE EXCLUDED.asset_class END, "
                "exchange = COALESCE(EXCLUDED.exchange, market_data.assets.exchange), "
                "currency = EXCLUDED.currency, "
                "calendar = COALESCE(CAST(:calendar AS text), market_data.assets.calendar)"
            ),
            [asset.__dict__ for asset in assets],
        )


def ingest(engine: Engine, source: BarSource) -> IngestReport:
    """Fetch, validate and store ``source``'s bars; quarantine what fails validation.

    Everything that can refuse a source (reading, parsing, validation, the quarantine payloads)
    happens before the first write, so a source that fails loads nothing."""
    bars = source.fetch()
    assets = source.assets()
    checked = validate(bars, previous_closes(engine, bars), trading_calendars(engine, assets))
    rejected = quarantine_rows(source.name, checked.rejected)
    upsert_assets(engine, assets)
    inserted, updated = upsert_bars(engine, checked.accepted)
    quarantined = write_quarantine(engine, rejected)
    minutes = checked.accepted[checked.accepted["timeframe"] == "1m"]
    if (inserted or updated) and not minutes.empty:
        refresh_rollups(
            engine,
            sorted(minutes["symbol"].astype(str).unique()),
            minutes["time"].min().to_pydatetime(),
            minutes["time"].max().to_pydatetime(),
        )
    return IngestReport(
        source=source.name,
        received=len(bars),
        inserted=inserted,
        updated=updated,
        unchanged=len(checked.accepted) - inserted - updated,
        quarantined=quarantined,
        flagged=checked.flagged,
        rejects=tuple(rejected),
    )


def store_indicators(engine: Engine, values: pd.DataFrame, timeframe: str) -> int:
    """COPY-upsert a wide indicator frame (time, symbol, one column per indicator) into
    ``market_data.indicators`` as long rows, skipping warm-up NaNs; return the rows written."""
    long = values.melt(id_vars=["time", "symbol"], var_name="indicator", value_name="value")
    long = long.dropna(subset=["value"])
    long.insert(2, "timeframe", timeframe)
    if long.empty:
        return 0
    with engine.begin() as conn:
        _copy_to_staging(
            conn,
            "staging_indicators",
            "time timestamptz, symbol text, timeframe text, indicator text, value float8",
            pl.from_pandas(long),
        )
        conn.execute(
            text(
                "INSERT INTO market_data.indicators (time, symbol, timeframe, indicator, value) "
                "SELECT time, symbol, timeframe, indicator, value FROM staging_indicators "
                "ON CONFLICT (symbol, timeframe, indicator, time) DO UPDATE "
                "SET value = EXCLUDED.value, computed_at = now() "
                "WHERE market_data.indicators.value IS DISTINCT FROM EXCLUDED.value"
            )
        )
    return len(long)


def bars_source(timeframe: str) -> str:
    """Return the relation a hot read of ``timeframe`` bars queries: the timeframe's own table,
    not the ``market_data.ohlcv`` view. Once psycopg prepares a statement (its fifth run, as in
    every trade cycle) PostgreSQL's generic plan cannot prune the view's branches by a bound
    ``timeframe`` and probes all four tables; an unknown timeframe reads the view (no rows)."""
    return bars_table(timeframe) if timeframe in CHUNK_INTERVALS else "market_data.ohlcv"


def read_bars(
    engine: Engine,
    symbols: list[str],
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    timeframe: str = "1d",
    last: int | None = None,
) -> pd.DataFrame:
    """Return the stored bars of ``symbols`` with ``start <= time <= end`` as a bar frame.

    ``last`` keeps only each symbol's newest ``last`` bars in that window. Raises
    :class:`DataUnavailable` naming the symbols that have no bars at all in the window.
    """
    table = bars_source(timeframe)
    query = f"""
        SELECT time, symbol, timeframe, open, high, low, close, volume, source
        FROM {table}
        WHERE symbol = ANY(:symbols) AND timeframe = :timeframe
          AND (CAST(:start AS timestamptz) IS NULL OR time >= CAST(:start AS timestamptz))
          AND (CAST(:end AS timestamptz) IS NULL OR time <= CAST(:end AS timestamptz))
        ORDER BY symbol, time
    """
    if last is not None:
        query = f"""
            SELECT b.time, b.symbol, b.timeframe, b.open, b.high, b.low, b.close, b.volume,
                   b.source
            FROM (SELECT DISTINCT unnest(CAST(:symbols AS text[])) AS symbol) s
            CROSS JOIN LATERAL (
                SELECT * FROM {table} o
                WHERE o.symbol = s.symbol AND o.timeframe = :timeframe
                  AND (CAST(:start AS timestamptz) IS NULL OR o.time >= CAST(:start AS timestamptz))
                  AND (CAST(:end AS timestamptz) IS NULL OR o.time <= CAST(:end AS timestamptz))
                ORDER BY o.time DESC LIMIT CAST(:last AS integer)
            ) b
            ORDER BY b.symbol, b.time
        """
    params = {
        "symbols": list(symbols),
        "timeframe": timeframe,
        "start": _as_utc(start),
        "end": _as_utc(end),
        "last": last,
    }
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(query), conn, params=params)
    bars = normalise(frame) if not frame.empty else empty_bars()
    missing = sorted(set(symbols) - set(bars["symbol"]))
    if missing:
        raise DataUnavailable(
            f"no {timeframe} bars for {', '.join(missing)} between {start or 'the start'} and "
            f"{end or 'the end'}; run `prism data ingest bundled` or check the symbols "
            f"(stored: {', '.join(stored_symbols(engine)) or 'none'})"
        )
    return bars


def _as_utc(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ).to_pydatetime()


RECENT = timedelta(days=30)
"""How far back :func:`newest_time` looks first: one chunk interval of ``market_data.bars_1m``
(:data:`prism.db.bars.CHUNK_INTERVALS`), so on TimescaleDB the lookup plans over the newest one
or two chunks even when 1m bars are kept for years."""

_NEWEST = """
SELECT max(time) FROM {table}
WHERE symbol = ANY(:s) AND timeframe = :tf AND time > :since
  AND (CAST(:upto AS timestamptz) IS NULL OR time <= :upto)
"""


def newest_time(
    engine: Engine, symbols: list[str], timeframe: str, upto: datetime | None = None
) -> datetime | None:
    """Return the time of the newest ``timeframe`` bar of any of ``symbols`` (at or before
    ``upto`` if given), or None when there is none.

    The window of :data:`RECENT` before ``upto`` (or now) is asked first, with a constant lower
    bound that TimescaleDB excludes chunks by at planning; only a series with nothing in that
    window pays for the whole series, which each timeframe's chunk interval keeps to a handful
    of chunks for its usual retention (three for 20 years of daily bars, see
    :mod:`prism.db.bars`).
    """
    since = (upto or datetime.now(UTC)) - RECENT
    params = {"s": symbols, "tf": timeframe, "upto": upto}
    with engine.connect() as conn:
        query = text(_NEWEST.format(table=bars_source(timeframe)))
        newest = conn.execute(query, {**params, "since": since}).scalar()
        if newest is None:
            newest = conn.execute(
                query, {**params, "since": datetime.min.replace(tzinfo=UTC)}
            ).scalar()
    return None if newest is None else pd.Timestamp(newest).to_pydatetime()


def stored_symbols(engine: Engine, timeframe: str = "1d") -> list[str]:
    """Return the symbols that have at least one bar of ``timeframe``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT DISTINCT symbol FROM {bars_source(timeframe)} "
                "WHERE timeframe = :tf ORDER BY 1"
            ),
            {"tf": timeframe},
        )
        return [row[0] for row in rows]
