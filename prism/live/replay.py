"""Replay: a deployment's trade cycle run over a stretch of stored history, bar by bar, as if
live. The paper broker fills at each next bar's open, so a replay's orders and fills are the
backtest's trades for the same strategy and costs (as long as no risk limit binds).

One loop (:func:`replay`) serves both ways of running a cycle: :func:`replay_window` calls the
cycle in this process (``prism runner replay``, the parity tests), and the runner's
``python -m runner N`` hands it a function that runs each bar as its own Prefect
``trade_cycle`` flow run (the demo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.data.store import read_bars
from prism.live import cycle, deployments
from prism.live.sources import StrategySource

RunCycle = Callable[[datetime], Mapping[str, Any]]
"""Run one cycle for the bar at the given time; return :meth:`cycle.CycleReport.as_dict`."""


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did: bars replayed, orders and fills, the final equity, the outcomes seen
    and the model version of the last cycle."""

    bars: int
    orders: int
    fills: int
    final_equity: float | None
    outcomes: tuple[str, ...]
    model_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain values (what ``python -m runner`` prints as JSON)."""
        return {**self.__dict__, "outcomes": list(self.outcomes)}


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


def replay_times(
    engine: Engine, symbols: list[str], bars: int, timeframe: str = "1d"
) -> list[datetime]:
    """Return the times of the last ``bars`` bars stored for ``symbols`` (union, ascending)."""
    frame = read_bars(engine, symbols, timeframe=timeframe, last=bars)
    times = sorted(frame["time"].unique())[-bars:]
    return [pd.Timestamp(t).to_pydatetime() for t in times]


def replay(
    times: list[datetime], run_cycle: RunCycle, label: str, progress: bool = False
) -> ReplaySummary:
    """Run ``run_cycle`` for every time of ``times``, oldest first, with a progress bar on
    stderr when ``progress``; return the summary."""
    reports = []
    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        job = bar.add_task(label, total=len(times))
        for as_of in times:
            reports.append(run_cycle(as_of))
            bar.advance(job)
    return ReplaySummary(
        bars=len(reports),
        orders=sum(int(r["orders"]) for r in reports),
        fills=sum(int(r["fills"]) for r in reports),
        final_equity=reports[-1]["equity"] if reports else None,
        outcomes=tuple(sorted({str(r["outcome"]) for r in reports})),
        model_version=reports[-1]["model_version"] if reports else None,
    )


def _utc(moment: datetime) -> datetime:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def replay_window(
    settings: Settings,
    name: str,
    start: datetime,
    end: datetime,
    engine: Engine,
    progress: bool = False,
    source: StrategySource | None = None,
) -> ReplaySummary:
    """Run deployment ``name``'s cycle in this process for every stored bar in [start, end]."""
    deployment = deployments.get_deployment(engine, name)
    times = bar_times(
        engine, list(deployment.symbols), deployment.timeframe, _utc(start), _utc(end)
    )
    if not times:
        raise DataUnavailable(
            f"no {deployment.timeframe} bars of {', '.join(deployment.symbols)} between "
            f"{start} and {end}; ingest them or pick a stored window (`prism data status`)"
        )
    return replay(
        times,
        lambda as_of: cycle.run_cycle(engine, settings, name, as_of=as_of, source=source).as_dict(),
        f"replaying {name}",
        progress,
    )
