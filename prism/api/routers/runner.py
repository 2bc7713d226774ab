"""``/api/v1/runner``: deployments (list, create, halt, resume, drift), risk limits, orders,
fills, positions, risk snapshots and an order's lineage; ``/api/v1/events``: system events."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from prism.api.deps import ApiContext, caller, context
from prism.api.models import (
    Done,
    HaltRequest,
    LimitChange,
    LimitChanged,
    NewDeployment,
    Row,
    finite,
    problem_responses,
    records,
)
from prism.api.security import Claims
from prism.core.errors import ConfigError
from prism.core.events import recent_events
from prism.live import cycle, deployments, risk
from prism.live.drift import drift
from prism.monitoring.orders import OrderFilter, fills, orders
from prism.monitoring.pages import risk_snapshots
from prism.monitoring.positions import positions
from prism.registry.lineage import order_lineage

router = APIRouter(prefix="/api/v1", tags=["runner"])

Ctx = Annotated[ApiContext, Depends(context)]
Caller = Annotated[Claims, Depends(caller)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


@router.get("/runner/deployments")
def deployment_list(ctx: Ctx) -> list[Row]:
    """List deployments with their state (halted: why and by whom)."""
    return [_shown(d) for d in deployments.list_deployments(ctx.engine)]


def _shown(d: deployments.Deployment) -> Row:
    return {**dataclasses.asdict(d), "halted_at": d.halted_at.isoformat() if d.halted_at else None}


@router.post(
    "/runner/deployments",
    status_code=201,
    responses=problem_responses(400, 409),
)
def create_deployment(body: NewDeployment, ctx: Ctx) -> Row:
    """Create a deployment with the checks of ``prism runner deployments add`` (name, symbols,
    timeframe, broker, capital, parameters); it trades from its next scheduled cycle under
    the default risk limits. 409 if the name is taken (change one with the CLI)."""
    try:
        deployments.get_deployment(ctx.engine, body.name)
    except ConfigError:
        pass
    else:
        raise HTTPException(409, f"deployment {body.name!r} exists")
    saved = deployments.upsert_deployment(
        ctx.writer,
        deployments.Deployment(
            body.name,
            tuple(s.strip() for s in body.symbols),
            body.timeframe,
            body.capital,
            model_alias=body.alias,
            model_name=body.model,
            enabled=body.enabled,
            params=body.params,
            broker=body.broker,
            broker_account=body.account,
        ),
    )
    return _shown(saved)


@router.get(
    "/runner/deployments/{name}/drift",
    responses=problem_responses(400, 404),
)
def deployment_drift(
    name: str, ctx: Ctx, start: datetime | None = None, end: datetime | None = None
) -> Row:
    """Re-simulate the deployment's live window with the backtester (``prism runner drift``)
    and split the gap between live and simulated P&L into signals, risk limits, fill prices,
    fees, timing and a residual."""
    report: Row = finite(drift(ctx.engine, ctx.settings, name, start, end).as_dict())
    return report


@router.post("/runner/deployments/{name}/halt")
def halt(name: str, body: HaltRequest, ctx: Ctx, claims: Caller) -> Done:
    """Kill switch: stop the deployment sending orders; ``flatten`` also closes positions."""
    if body.flatten:
        sent = cycle.flatten(ctx.writer, ctx.settings, name, claims.subject)
        return Done(deployment=name, changed=True, detail=f"halted; {len(sent)} closing orders")
    changed = cycle.halt_deployment(
        ctx.writer, ctx.settings, name, body.reason, claims.subject, "kill_switch"
    )
    return Done(deployment=name, changed=changed, detail="halted" if changed else "was halted")


@router.post("/runner/deployments/{name}/resume")
def resume(name: str, ctx: Ctx, claims: Caller) -> Done:
    """Clear a halt after someone has looked at why."""
    changed = deployments.resume_deployment(ctx.writer, name, claims.subject)
    return Done(deployment=name, changed=changed, detail="resumed" if changed else "not halted")


@router.get("/runner/limits")
def limits(ctx: Ctx, deployment: str | None = None) -> Row:
    """Return the risk limits in force (globally, or for one deployment), as numbers."""
    with ctx.engine.connect() as conn:
        limits = dataclasses.asdict(risk.load_limits(conn, deployment))
    return {key: float(value) for key, value in limits.items()}


@router.put("/runner/limits/{key}", response_model=LimitChanged)
def set_limit(key: str, body: LimitChange, ctx: Ctx, claims: Caller) -> LimitChanged:
    """Change one risk limit (recorded with the caller); the next cycle trades under it."""
    previous = deployments.change_limit(
        ctx.writer, key, body.value, claims.subject, body.deployment
    )
    return LimitChanged(key=key, deployment=body.deployment, value=body.value, previous=previous)


def _filter(
    start: date | None = None,
    end: date | None = None,
    symbol: str | None = None,
    deployment: str | None = None,
    limit: Limit = 1000,
) -> OrderFilter:
    """The order and fill lists' query parameters, as the library's filter."""
    return OrderFilter(
        start=start,
        end=end,
        symbols=(symbol,) if symbol else (),
        deployments=(deployment,) if deployment else (),
        limit=limit,
    )


Filter = Annotated[OrderFilter, Depends(_filter)]


@router.get("/runner/orders")
def order_list(ctx: Ctx, where: Filter) -> list[Row]:
    """List the newest orders with fill prices and slippage."""
    return records(orders(ctx.engine, where))


@router.get("/runner/orders/{client_order_id}/lineage")
def lineage(client_order_id: str, ctx: Ctx) -> Row:
    """Trace an order back: decision, model version and alias, MLflow run, notebook."""
    chain = order_lineage(ctx.engine, ctx.settings, client_order_id)
    return dataclasses.asdict(chain)


@router.get("/runner/fills")
def fill_list(ctx: Ctx, where: Filter) -> list[Row]:
    """List the newest fills."""
    return records(fills(ctx.engine, where))


@router.get("/runner/positions")
def position_list(ctx: Ctx, deployment: str | None = None) -> list[Row]:
    """List positions with their last price, market value, weight and P&L."""
    return records(positions(ctx.engine, deployment))


@router.get("/runner/risk/{deployment}")
def risk_list(deployment: str, ctx: Ctx, limit: Limit = 100) -> list[Row]:
    """Return a deployment's newest risk snapshots."""
    return records(risk_snapshots(ctx.engine, deployment, limit))


@router.get("/events")
def events(ctx: Ctx, limit: Limit = 100) -> list[Row]:
    """Return the newest system events (the API's audit trail among them)."""
    return [
        {**dataclasses.asdict(e), "time": e.time.isoformat()}
        for e in recent_events(ctx.engine, limit)
    ]
