"""``/api/v1/research``: the strategy library, a small backtest run in the request (the same
steps and data-quality gate as ``prism backtest``), and MLflow runs with their metrics."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from prism.api.deps import ApiContext, context
from prism.api.models import BacktestRequest, BacktestResult, Row, records
from prism.backtest.engine import BacktestConfig, report, run_backtest
from prism.core.errors import ConfigError
from prism.data.health import check_quality
from prism.data.store import read_bars
from prism.monitoring.pages import run_detail
from prism.monitoring.research import leaderboard
from prism.strategies import available_strategies, make_strategy

router = APIRouter(prefix="/api/v1/research", tags=["research"])

Ctx = Annotated[ApiContext, Depends(context)]


@router.get("/strategies")
def strategies() -> list[Row]:
    """List the strategies with their parameters and defaults (null: required)."""
    return [
        {
            "name": name,
            "description": " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()),
            "params": {
                f.name: None if f.default is dataclasses.MISSING else f.default
                for f in dataclasses.fields(cls)
            },
        }
        for name, cls in sorted(available_strategies().items())
    ]


@router.post("/backtests", response_model=BacktestResult)
def backtest(body: BacktestRequest, ctx: Ctx) -> BacktestResult:
    """Backtest a strategy on stored bars now (up to ``api_backtest_max_bars`` bars); bars with
    open gaps or a stale feed are refused unless ``allow_gaps``."""
    chosen = make_strategy(body.strategy, body.params)
    bars = read_bars(ctx.engine, body.symbols, body.start, body.end, body.timeframe)
    cap = ctx.settings.api_backtest_max_bars
    if len(bars) > cap:
        raise ConfigError(
            f"{len(bars)} bars is more than a synchronous backtest runs ({cap}); narrow "
            "start/end or the symbols, or use `prism backtest`"
        )
    if not body.allow_gaps:
        check_quality(ctx.engine, body.symbols, body.timeframe, body.start, body.end)
    config = BacktestConfig(
        capital=body.cash, commission_bps=body.commission_bps, slippage_bps=body.slippage_bps
    )
    figures = report(run_backtest(bars, chosen, config), body.timeframe)
    return BacktestResult(
        strategy=body.strategy,
        symbols=body.symbols,
        bars=len(bars),
        metrics={k: float(v) for k, v in figures.items()},
    )


@router.get("/runs")
def runs(
    ctx: Ctx,
    metric: str = "sharpe",
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
) -> list[Row]:
    """Return the best of the newest MLflow runs by ``metric`` (with the usual metrics)."""
    return records(leaderboard(ctx.settings, metric, limit))


@router.get("/runs/{run_id}")
def run(run_id: str, ctx: Ctx) -> Row:
    """Return one MLflow run: params, metrics, tags."""
    return run_detail(ctx.settings, run_id)
