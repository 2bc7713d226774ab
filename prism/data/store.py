"""The OHLCV store: COPY-upserts validated bars, quarantines the rest, and reads bars back.

Loads go through a temporary staging table filled by ``COPY`` (a CSV buffer written by polars,
the fastest path measured here) and one ``INSERT ... ON CONFLICT`` into ``market_data.ohlcv``.
A row whose values did not change is left untouched, so ingesting the same data twice leaves
exactly the same rows, down to ``ingested_at``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import polars as pl
from sqlalchemy import Connection, Engine, text

from prism.data.bars import BAR_COLUMNS, empty_bars, normalise
from prism.data.sources import Asset, BarSource
from prism.data.validate import validate
from prism.errors import DataUnavailable


@dataclass(frozen=True)
class IngestReport:
    """What an ingestion did: rows seen, inserted, updated, left unchanged and quarantined."""

    source: str
    received: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int


_UPSERT = """
WITH upserted AS (
    INSERT INTO market_data.ohlcv AS o
        (time, symbol, timeframe, open, high, low, close, volume, source)
    SELECT time, symbol, timeframe, open, high, low, close, volume, source FROM staging_ohlcv
    ON CONFLICT (symbol, timeframe, time) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source,
        ingested_at = now()
    WHERE (o.open, o.high, o.low, o.close, o.volume, o.source)
          IS DISTINCT FROM
          (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume,
           EXCLUDED.source)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""


def _copy_to_staging(conn: Connection, staging: str, columns: str, frame: pd.DataFrame) -> None:
    """Create the temporary table ``staging`` (``columns`` is its SQL column list) and COPY
    ``frame`` into it as CSV written by polars (pandas' ``to_csv`` is the slow step otherwise)."""
    payload = pl.from_pandas(frame).write_csv(
        include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.f%z"
    )
    conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} ({columns}) ON COMMIT DROP")
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {staging} FROM STDIN (FORMAT csv)") as copy:
        copy.write(payload.encode())


def upsert_bars(engine: Engine, bars: pd.DataFrame) -> tuple[int, int]:
    """COPY-upsert validated ``bars``; return (inserted, updated) row counts."""
    if bars.empty:
        return 0, 0
    with engine.begin() as conn:
        _copy_to_staging(
            conn,
            "staging_ohlcv",
            "time timestamptz, symbol text, timeframe text, open float8, high float8, "
            "low float8, close float8, volume float8, source text",
            bars[BAR_COLUMNS],
        )
        inserted, updated = conn.execute(text(_UPSERT)).one()
    return int(inserted), int(updated)


def quarantine(engine: Engine, source: str, rejected: pd.DataFrame) -> int:
    """Write rejected rows (with ``rule`` and ``reason`` columns) to the quarantine table."""
    if rejected.empty:
        return 0
    rows = [
        {
            "source": source,
            "symbol": str(row.get("symbol")),
            "raw": json.dumps(
                {k: _jsonable(v) for k, v in row.items() if k not in ("rule", "reason")}
            ),
            "rule": row["rule"],
            "reason": row["reason"],
        }
        for row in rejected.to_dict("records")
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.quarantine (source, symbol, raw, rule, reason) "
                "VALUES (:source, :symbol, CAST(:raw AS jsonb), :rule, :reason)"
            ),
            rows,
        )
    return len(rows)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def upsert_assets(engine: Engine, assets: list[Asset]) -> None:
    """Insert or refresh the assets' reference rows."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.assets "
                "(symbol, name, asset_class, exchange, currency, calendar) "
                "VALUES (:symbol, :name, :asset_class, :exchange, :currency, :calendar) "
                "ON CONFLICT (symbol) DO UPDATE SET name = EXCLUDED.name, "
                "asset_class = EXCLUDED.asset_class, exchange = EXCLUDED.exchange, "
                "currency = EXCLUDED.currency, calendar = EXCLUDED.calendar"
            ),
            [asset.__dict__ for asset in assets],
        )


def ingest(engine: Engine, source: BarSource) -> IngestReport:
    """Fetch, validate and store ``source``'s bars; quarantine what fails validation."""
    bars = source.fetch()
    checked = validate(bars)
    upsert_assets(engine, source.assets())
    inserted, updated = upsert_bars(engine, checked.accepted)
    quarantined = quarantine(engine, source.name, checked.rejected)
    return IngestReport(
        source=source.name,
        received=len(bars),
        inserted=inserted,
        updated=updated,
        unchanged=len(checked.accepted) - inserted - updated,
        quarantined=quarantined,
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
            long,
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
    query = """
        SELECT time, symbol, timeframe, open, high, low, close, volume, source FROM (
            SELECT *, row_number() OVER (PARTITION BY symbol ORDER BY time DESC) AS age
            FROM market_data.ohlcv
            WHERE symbol = ANY(:symbols) AND timeframe = :timeframe
              AND (CAST(:start AS timestamptz) IS NULL OR time >= CAST(:start AS timestamptz))
              AND (CAST(:end AS timestamptz) IS NULL OR time <= CAST(:end AS timestamptz))
        ) ranked
        WHERE CAST(:last AS integer) IS NULL OR age <= CAST(:last AS integer)
        ORDER BY symbol, time
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


def stored_symbols(engine: Engine, timeframe: str = "1d") -> list[str]:
    """Return the symbols that have at least one bar of ``timeframe``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT symbol FROM market_data.ohlcv WHERE timeframe = :tf ORDER BY 1"),
            {"tf": timeframe},
        )
        return [row[0] for row in rows]
