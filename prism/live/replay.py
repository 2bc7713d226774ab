"""Replay: a deployment's trade cycle run over a stretch of stored history, bar by bar, as if
live. The paper broker fills at each next bar's open, so a replay's orders and fills are the
backtest's trades for the same strategy and costs (as long as no risk limit binds).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.live import cycle, deployments


def bar_times(
    engine: Engine, symbols: list[str], timeframe: str, start: datetime, end: datetime
) -> list[datetime]:
    """Return every stored bar time of ``symbols`` in [start, end] (union, ascending)."""
    with engine.connect() as conn:
        times = conn.execute(
            text(
                "SELECT DISTINCT time FROM market_data.ohlcv WHERE symbol = ANY(:s) "
                "AND timeframe = :tf AND time BETWEEN :start AND :end ORDER BY time"
            ),
            {"s": symbols, "tf": timeframe, "start": start, "end": end},
        ).scalars()
        return [pd.Timestamp(t).to_pydatetime() for t in times]


def _utc(moment: datetime) -> datetime:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def replay_window(
    settings: Settings,
    name: str,
    start: datetime,
    end: datetime,
    progress: bool = False,
    engine: Engine | None = None,
    source: cycle.StrategySource | None = None,
) -> dict[str, Any]:
    """Run deployment ``name``'s cycle for every stored bar in [start, end]; return a summary
    (bars, orders, fills, final equity, outcomes)."""
    from prism.db.engine import open_database

    engine = engine or open_database(settings)
    deployment = deployments.get_deployment(engine, name)
    times = bar_times(
        engine, list(deployment.symbols), deployment.timeframe, _utc(start), _utc(end)
    )
    if not times:
        raise DataUnavailable(
            f"no {deployment.timeframe} bars of {', '.join(deployment.symbols)} between "
            f"{start} and {end}; ingest them or pick a stored window (`prism data status`)"
        )
    reports = []
    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        job = bar.add_task(f"replaying {name}", total=len(times))
        for as_of in times:
            reports.append(cycle.run_cycle(engine, settings, name, as_of=as_of, source=source))
            bar.advance(job)
    return {
        "bars": len(reports),
        "orders": sum(r.orders for r in reports),
        "fills": sum(r.fills for r in reports),
        "final_equity": reports[-1].equity,
        "outcomes": sorted({r.outcome for r in reports}),
        "model_version": reports[-1].model_version,
    }
