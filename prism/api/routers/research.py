"""``/api/v1/research``: the strategy library, a small backtest run in the request (the same
steps and data-quality gate as ``prism backtest``), MLflow runs with their metrics, and
background jobs (:mod:`prism.api.jobs`) for what takes longer: a backtest of any size, a
notebook run (``prism research run``), a backtest sweep (``prism sweep``) and a notebook sweep
(``prism research sweep``). Requests are checked before a job is queued, so a bad strategy,
grid, notebook or parameter is a 400 at once, not a failed job."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query

from prism.api.deps import ApiContext, caller, context
from prism.api.jobs import JobRunner, Work
from prism.api.models import (
    BacktestRequest,
    BacktestResult,
    Job,
    JobAccepted,
    NotebookRunRequest,
    NotebookSweepRequest,
    Row,
    SweepRequest,
    problem_responses,
    records,
)
from prism.api.security import Claims, role_allows
from prism.backtest.engine import BacktestConfig, report, run_backtest
from prism.backtest.sweep import best, check_grid_size, grid_combinations, run_sweep
from prism.core.errors import ConfigError
from prism.data.health import check_window
from prism.data.store import read_bars
from prism.monitoring.pages import run_detail
from prism.monitoring.research import leaderboard
from prism.research.notebooks import coerce_parameters, notebook_parameters, run_notebook
from prism.research.sweeps import combinations, parse_grid, sweep_notebook
from prism.strategies import available_strategies, make_strategy

router = APIRouter(prefix="/api/v1/research", tags=["research"])

Ctx = Annotated[ApiContext, Depends(context)]
Caller = Annotated[Claims, Depends(caller)]
MOST_TRIALS = 100_000
MOST_NOTEBOOK_TRIALS = 1_000


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


API_ALLOWANCE = 'set "allow_gaps": true in the request to run on them anyway'
"""How an API caller runs on bars the data-quality gate refuses."""


def _gated_bars(ctx: ApiContext, body: BacktestRequest, cap: int | None = None) -> pd.DataFrame:
    """Return the stored bars a backtest or sweep of ``body`` runs on (at most ``cap``), after
    the data-quality gate ``prism backtest`` applies."""
    bars = read_bars(ctx.engine, body.symbols, body.start, body.end, body.timeframe)
    if cap is not None and len(bars) > cap:
        raise ConfigError(
            f"{len(bars)} bars is more than a synchronous backtest runs ({cap}); narrow "
            "start/end or the symbols, or POST the same body to /api/v1/research/backtest-jobs"
        )
    if not body.allow_gaps:
        check_window(ctx.engine, body.symbols, body.timeframe, body.start, body.end, API_ALLOWANCE)
    return bars


def _config(body: BacktestRequest) -> BacktestConfig:
    return BacktestConfig(
        capital=body.cash, commission_bps=body.commission_bps, slippage_bps=body.slippage_bps
    )


def _backtest(ctx: ApiContext, body: BacktestRequest, cap: int | None) -> BacktestResult:
    chosen = make_strategy(body.strategy, body.params)
    bars = _gated_bars(ctx, body, cap)
    figures = report(run_backtest(bars, chosen, _config(body)), body.timeframe)
    return BacktestResult(
        strategy=body.strategy,
        symbols=body.symbols,
        bars=len(bars),
        metrics={k: float(v) for k, v in figures.items()},
    )


@router.post("/backtests", response_model=BacktestResult)
def backtest(body: BacktestRequest, ctx: Ctx) -> BacktestResult:
    """Backtest a strategy on stored bars now (up to ``api_backtest_max_bars`` bars; larger ones
    go to ``/backtest-jobs``); bars with open gaps or a stale feed are refused unless
    ``allow_gaps``."""
    return _backtest(ctx, body, ctx.settings.api_backtest_max_bars)


def _jobs(ctx: ApiContext) -> JobRunner:
    runner: JobRunner = ctx.extra["jobs"]  # type: ignore[assignment]
    return runner


def _queue(ctx: ApiContext, kind: str, request: Row, claims: Claims, work: Work) -> JobAccepted:
    job_id = _jobs(ctx).submit(kind, request, claims.subject, work)
    return JobAccepted(
        job_id=job_id, kind=kind, status="queued", href=f"/api/v1/research/jobs/{job_id}"
    )


@router.post(
    "/backtest-jobs", status_code=202, response_model=JobAccepted, responses=problem_responses(400)
)
def backtest_job(body: BacktestRequest, ctx: Ctx, claims: Caller) -> JobAccepted:
    """Queue a backtest of any size (the body of ``/backtests``) as a background job; its
    result, once ``done``, is what ``/backtests`` answers."""
    make_strategy(body.strategy, body.params)
    return _queue(
        ctx,
        "backtest",
        body.model_dump(mode="json"),
        claims,
        lambda: _backtest(ctx, body, None).model_dump(),
    )


def _notebook(ctx: ApiContext, name: str) -> Path:
    folder = ctx.settings.api_notebook_dir
    path = folder / name
    if not path.is_file():
        known = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        raise ConfigError(
            f"no notebook {name!r} in the API's notebook folder; it has "
            f"{', '.join(known) or 'none'}"
        )
    return path


@router.post(
    "/notebook-runs", status_code=202, response_model=JobAccepted, responses=problem_responses(400)
)
def notebook_run(body: NotebookRunRequest, ctx: Ctx, claims: Caller) -> JobAccepted:
    """Queue a notebook run: papermill executes the notebook in a worker as one MLflow run
    (``prism research run``); the job's result holds ``run_id`` and the run's metrics."""
    path = _notebook(ctx, body.notebook)
    coerce_parameters(notebook_parameters(path), body.parameters)

    def work() -> dict[str, Any]:
        run = run_notebook(ctx.settings, path, body.parameters, progress=False)
        return {"run_id": run.run_id, "metrics": run.metrics, "executed": run.executed.name}

    return _queue(ctx, "notebook", body.model_dump(mode="json"), claims, work)


@router.post(
    "/sweeps", status_code=202, response_model=JobAccepted, responses=problem_responses(400)
)
def sweep(body: SweepRequest, ctx: Ctx, claims: Caller) -> JobAccepted:
    """Queue a backtest sweep (``prism sweep``): every combination of the grid kept by the
    ``where`` filters; the result holds the best combination with its deflated Sharpe ratio
    (given every trial) and the ``top`` rows by Sharpe."""
    _, combos = grid_combinations(body.grid, body.where, MOST_TRIALS)
    make_strategy(body.strategy, {**body.params, **combos[0]})

    def work() -> dict[str, Any]:
        table = run_sweep(
            _gated_bars(ctx, body), body.strategy, combos, _config(body), fixed=body.params
        )
        winner = records(pd.DataFrame([best(table)]))[0]
        top = table.sort_values("sharpe", ascending=False).head(body.top)
        return {"trials": len(table), "best": winner, "top": records(top)}

    return _queue(ctx, "sweep", body.model_dump(mode="json"), claims, work)


@router.post(
    "/notebook-sweeps",
    status_code=202,
    response_model=JobAccepted,
    responses=problem_responses(400),
)
def notebook_sweep(body: NotebookSweepRequest, ctx: Ctx, claims: Caller) -> JobAccepted:
    """Queue a notebook sweep (``prism research sweep``): one parent MLflow run with the whole
    grid, child runs for the best ``keep``; the result names them and lists every trial."""
    path = _notebook(ctx, body.notebook)
    check_grid_size(body.grid, MOST_NOTEBOOK_TRIALS)
    axes = parse_grid(body.grid)
    combinations(notebook_parameters(path), axes, body.parameters)

    def work() -> dict[str, Any]:
        done = sweep_notebook(
            ctx.settings,
            path,
            axes,
            body.parameters,
            workers=body.workers,
            keep=body.keep,
            metric=body.metric,
        )
        return {
            "parent_run_id": done.parent_run_id,
            "metric": done.metric,
            "children": [c.run_id for c in done.children],
            "failed": len(done.failures()),
            "trials": records(done.table),
        }

    return _queue(ctx, "notebook_sweep", body.model_dump(mode="json"), claims, work)


@router.get("/jobs", response_model=list[Job])
def jobs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[Job]:
    """List the newest background jobs with their status (the API's own table, read through
    the writing login: the read-only one cannot see it)."""
    return [Job(**row) for row in _jobs(ctx).recent(limit)]


@router.get(
    "/jobs/{job_id}",
    response_model=Job,
    responses=problem_responses(404),
)
def job(job_id: str, ctx: Ctx) -> Job:
    """Return a background job: ``queued``, ``running``, ``done`` with its ``result`` or
    ``failed`` with its ``error``."""
    found = _jobs(ctx).get(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id!r}; list them at /api/v1/research/jobs")
    return Job(**found)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=Job,
    responses=problem_responses(403, 404, 409),
)
def cancel_job(job_id: str, ctx: Ctx, claims: Caller) -> Job:
    """Cancel a queued job (its submitter or an admin): it is marked ``failed``, "cancelled by
    …", and never starts. A running job cannot be stopped (409)."""
    found = _jobs(ctx).get(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id!r}; list them at /api/v1/research/jobs")
    if found["submitted_by"] != claims.subject and not role_allows(claims.role, "admin"):
        raise HTTPException(
            403, f"job {job_id} is {found['submitted_by']}'s; an admin may cancel it"
        )
    if not _jobs(ctx).cancel(job_id, claims.subject):
        status = (_jobs(ctx).get(job_id) or found)["status"]
        raise HTTPException(409, f"job {job_id} is {status}; only a queued job can be cancelled")
    cancelled = _jobs(ctx).get(job_id)
    return Job(**(cancelled or found))


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
