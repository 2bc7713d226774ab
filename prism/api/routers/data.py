"""``/api/v1/data``: stored series, bars (cursor-paged, JSON, CSV or Parquet), gaps, quarantine and
the data status ``prism data status`` prints."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from prism.api.deps import ApiContext, context
from prism.api.models import BarsPage, Row, records
from prism.data.gaps import find_gaps
from prism.data.health import data_status
from prism.monitoring.pages import bars_page, quarantined, symbol_catalogue

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
) -> BarsPage | Response:
    """Return one page of a series' bars, oldest first; pass ``next_cursor`` back as
    ``cursor`` for the next page. CSV and Parquet answers carry it in ``X-Next-Cursor``."""
    frame, following = bars_page(ctx.engine, symbol, timeframe, start, end, cursor, limit)
    headers = {"X-Next-Cursor": following.isoformat()} if following else {}
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv", headers=headers)
    if format == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return Response(buffer.getvalue(), media_type=PARQUET, headers=headers)
    return BarsPage(symbol=symbol, timeframe=timeframe, bars=records(frame), next_cursor=following)


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
