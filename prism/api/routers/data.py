"""``/api/v1/data``: stored series, bars (cursor-paged, JSON, CSV or Parquet), gaps, quarantine,
the data status ``prism data status`` prints, indicators and point-in-time features of a symbol
over a range, and ingest of an uploaded CSV or Parquet file through the validation of ``prism
data ingest csv|parquet``."""

from __future__ import annotations

import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from prism.api.deps import ApiContext, context
from prism.api.models import BarsPage, IngestResult, Row, Series, problem_responses, records
from prism.core.errors import ConfigError
from prism.data.files import FileBarSource, parse_mapping
from prism.data.gaps import find_gaps
from prism.data.health import data_status
from prism.data.store import ingest as ingest_source
from prism.data.store import read_bars
from prism.features import indicators as indicator_math
from prism.features import store as feature_store
from prism.monitoring.pages import bars_page, bars_page_json, quarantined, symbol_catalogue

router = APIRouter(prefix="/api/v1/data", tags=["data"])

Ctx = Annotated[ApiContext, Depends(context)]
Timeframe = Literal["1m", "5m", "1h", "1d"]
PARQUET = "application/vnd.apache.parquet"


@router.get("/symbols")
def symbols(ctx: Ctx) -> list[Row]:
    """List stored series: symbol, timeframe, first and last bar, bars, calendar."""
    return records(symbol_catalogue(ctx.engine))


TABLES = {
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        PARQUET: {"schema": {"type": "string", "format": "binary"}},
    },
    "headers": {
        "X-Next-Cursor": {
            "description": "CSV and Parquet: next_cursor of this page (absent on the last)",
            "schema": {"type": "string", "format": "date-time"},
        }
    },
}
"""The CSV and Parquet forms of a bars page, beside the JSON one."""


@router.get("/bars/{symbol}", response_model=BarsPage, responses={200: TABLES})
def bars(
    symbol: str,
    ctx: Ctx,
    timeframe: Timeframe = "1d",
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: Annotated[datetime | None, Query(description="next_cursor of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Literal["json", "csv", "parquet"] = "json",
    source: Annotated[
        Literal["stored", "aggregate"],
        Query(
            description="stored: the bars stored for the timeframe; aggregate: the 1h or 1d "
            "rollup of the stored 1m bars (TimescaleDB continuous aggregate; 1h and 1d only)"
        ),
    ] = "stored",
) -> BarsPage | Response:
    """Return one page of a series' bars, oldest first; pass ``next_cursor`` back as
    ``cursor`` for the next page. CSV and Parquet answers carry it in ``X-Next-Cursor``.
    ``source=aggregate`` pages the hourly or daily rollup of the 1m bars instead of the bars
    stored for that timeframe (a series loaded as minutes has no stored 1h/1d bars)."""
    if format == "json":
        rows, following = bars_page_json(
            ctx.engine, symbol, timeframe, start, end, cursor, limit, source
        )
        following_text = (
            following.astimezone(UTC).isoformat().replace("+00:00", "Z") if following else None
        )
        body = (
            f'{{"symbol": {json.dumps(symbol)}, "timeframe": {json.dumps(timeframe)}, '
            f'"bars": {rows}, "next_cursor": {json.dumps(following_text)}}}'
        )
        return Response(body, media_type="application/json")
    frame, following = bars_page(ctx.engine, symbol, timeframe, start, end, cursor, limit, source)
    headers = {"X-Next-Cursor": following.isoformat()} if following else {}
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv", headers=headers)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return Response(buffer.getvalue(), media_type=PARQUET, headers=headers)


@router.get("/gaps")
def gaps(ctx: Ctx, symbol: str | None = None, timeframe: Timeframe | None = None) -> list[Row]:
    """List open gaps: symbol, timeframe, first and last missing bar (UTC), bars missing."""
    found = find_gaps(ctx.engine, [symbol] if symbol else None, timeframe)
    return [
        {
            "symbol": g.symbol,
            "timeframe": g.timeframe,
            "start": g.start.isoformat(),
            "end": g.end.isoformat(),
            "missing": g.missing,
        }
        for g in found
    ]


@router.get("/quarantine")
def quarantine(
    ctx: Ctx, symbol: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[Row]:
    """List the newest quarantined rows with the rule that rejected them."""
    return records(quarantined(ctx.engine, symbol, limit))


@router.get("/status")
def status(ctx: Ctx) -> list[Row]:
    """Return each series' health: span, bars, gaps, quarantined rows, staleness."""
    return [
        {
            "symbol": s.symbol,
            "timeframe": s.timeframe,
            "calendar": s.calendar,
            "source": s.source,
            "first": s.first.isoformat(),
            "last": s.last.isoformat(),
            "bars": s.bars,
            "gaps": s.gaps,
            "missing": s.missing,
            "quarantined": s.quarantined,
            "staleness": s.staleness,
            "silent_for": s.silent_for,
        }
        for s in data_status(ctx.engine, record=False)
    ]


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _range(frame: pd.DataFrame, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    times = pd.to_datetime(frame["time"], utc=True)
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= times >= _utc(start)
    if end is not None:
        keep &= times <= _utc(end)
    return frame[keep]


def _series(symbol: str, timeframe: str, frame: pd.DataFrame) -> Series:
    columns = [c for c in frame.columns if c not in ("symbol",)]
    return Series(symbol=symbol, timeframe=timeframe, columns=columns, rows=records(frame[columns]))


@router.get("/indicators/{symbol}", response_model=Series, responses=problem_responses(404))
def indicators(
    symbol: str,
    ctx: Ctx,
    timeframe: Timeframe = "1d",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Series:
    """Return the indicators ``prism data indicators`` computes (SMA, EMA, RSI, MACD, ATR,
    Bollinger, ADX) for ``symbol`` from ``start`` to ``end``. Each value uses only the bars up to
    its own (point in time): they are computed over the stored history up to ``end``, so the
    first rows of a range are warmed up."""
    bars = read_bars(ctx.engine, [symbol], None, end, timeframe)
    values = _range(indicator_math.compute(bars), start, end)
    return _series(symbol, timeframe, values)


@router.get("/features/{symbol}", response_model=Series, responses=problem_responses(400, 404))
def features(
    symbol: str,
    ctx: Ctx,
    timeframe: Timeframe = "1d",
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Annotated[
        str | None, Query(description="comma-separated feature names (default: all)")
    ] = None,
) -> Series:
    """Return ``symbol``'s point-in-time features from the feature store (``prism features
    build``) from ``start`` to ``end``; 404 naming the build command when none are stored."""
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    frame = feature_store.read(
        [symbol], start, end, timeframe, names, root=ctx.settings.feature_dir
    )
    return _series(symbol, timeframe, frame)


UPLOAD_TYPES = {"text/csv": "csv", "application/vnd.apache.parquet": "parquet"}


def _ingest_upload(
    ctx: ApiContext,
    payload: bytes,
    file_format: Literal["csv", "parquet"],
    filename: str,
    symbol: str | None,
    timeframe: str,
    mapping: list[str],
    tz: str,
    date_format: str | None,
    calendar: str | None,
) -> IngestResult:
    with tempfile.TemporaryDirectory(prefix="prism-upload-") as folder:
        path = Path(folder) / filename
        path.write_bytes(payload)
        try:
            source = FileBarSource(
                path,
                symbol,
                timeframe,
                parse_mapping(mapping),
                tz,
                date_format,
                file_format,
                calendar,
            )
            report = ingest_source(ctx.writer, source)
        except ConfigError as err:
            raise ConfigError(str(err).replace(str(path), filename)) from None
    return IngestResult(
        source=report.source,
        received=report.received,
        inserted=report.inserted,
        updated=report.updated,
        unchanged=report.unchanged,
        quarantined=report.quarantined,
        flagged=report.flagged,
        rejects=[
            {
                "symbol": r["symbol"],
                "rule": r["rule"],
                "reason": r["reason"],
                "row": json.loads(str(r["raw"])),
            }
            for r in report.rejects
        ],
    )


async def _bounded_body(request: Request, most: int) -> bytes:
    """Return the request body, or answer 413 as soon as it is known to exceed ``most`` bytes
    (from ``Content-Length``, else while it streams in), so an upload never fills memory."""
    too_large = HTTPException(
        413, f"the file is larger than PRISM_API_UPLOAD_MAX_MB ({most / 1e6:g} MB)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > most:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses=problem_responses(400, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def ingest(
    request: Request,
    ctx: Ctx,
    timeframe: Timeframe = "1d",
    symbol: Annotated[
        str | None, Query(description="every row's symbol (else the file needs a symbol column)")
    ] = None,
    mapping: Annotated[
        list[str] | None, Query(alias="map", description="FILE_COLUMN=BAR_COLUMN, repeatable")
    ] = None,
    tz: Annotated[str, Query(description="time zone of naive timestamps (IANA)")] = "UTC",
    date_format: Annotated[str | None, Query(description="strftime format of the time")] = None,
    calendar: Annotated[
        str | None, Query(description="trading calendar (XNYS, XLON, 24/7, ...)")
    ] = None,
    filename: Annotated[
        str, Query(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="named in errors")
    ] = "upload",
) -> IngestResult:
    """Load the request body, a CSV (``Content-Type: text/csv``) or Parquet
    (``application/vnd.apache.parquet``) file, through the same reading and validation as
    ``prism data ingest csv|parquet``: rows that break a rule are quarantined and listed in
    ``rejects``; a file that cannot be read loads nothing (400 naming the line)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in UPLOAD_TYPES:
        raise ConfigError(
            f"Content-Type {kind or '(none)'!r} is not an upload type; send "
            f"{' or '.join(UPLOAD_TYPES)}"
        )
    payload = await _bounded_body(request, int(ctx.settings.api_upload_max_mb * 1e6))
    if not payload:
        raise ConfigError("the request body is empty; send the file as the body")
    file_format: Literal["csv", "parquet"] = "csv" if UPLOAD_TYPES[kind] == "csv" else "parquet"
    suffix = "." + file_format
    name = filename if filename.endswith(suffix) else filename + suffix
    return await run_in_threadpool(
        _ingest_upload,
        ctx,
        payload,
        file_format,
        name,
        symbol,
        timeframe,
        mapping or [],
        tz,
        date_format,
        calendar,
    )
