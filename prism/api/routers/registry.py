"""``/api/v1/registry``: model versions, their approvals and gate results, and promotion and
rollback through the same gates as ``prism models promote``/``rollback``, the approver being
the token's subject."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

from fastapi import APIRouter, Depends

from prism.api.deps import ApiContext, caller, context
from prism.api.models import (
    GateOutcome,
    PromoteRequest,
    PromoteResult,
    RollbackRequest,
    RollbackResult,
    Row,
)
from prism.api.security import Claims
from prism.registry.gates import Overrides
from prism.registry.promotion import history, promote, rollback
from prism.registry.versions import list_versions, version_info

router = APIRouter(prefix="/api/v1/registry", tags=["registry"])

Ctx = Annotated[ApiContext, Depends(context)]
Caller = Annotated[Claims, Depends(caller)]


@router.get("/versions")
def versions(ctx: Ctx) -> list[Row]:
    """List registered model versions with their aliases and approver."""
    return [
        {
            "model": v.name,
            "version": v.version,
            "aliases": v.aliases,
            "run_id": v.run_id,
            "created_at": v.created_at.isoformat(),
            "approved_by": v.approved_by,
        }
        for v in list_versions(ctx.settings)
    ]


@router.get("/versions/{version}")
def version(version: str, ctx: Ctx) -> Row:
    """Return one version: run, aliases, approval, tags, gate results and its history."""
    info = version_info(ctx.settings, version)
    return {
        "model": info.name,
        "version": info.version,
        "aliases": info.aliases,
        "run_id": info.run_id,
        "created_at": info.created_at.isoformat(),
        "approved_by": info.approved_by,
        "approved_at": info.approved_at,
        "reason": info.reason,
        "gate_results": json.loads(info.tags.get("gate_results", "[]")),
        "tags": info.tags,
        "history": [
            {**dataclasses.asdict(a), "decided_at": a.decided_at.isoformat()}
            for a in history(ctx.engine, ctx.settings.model_name, version)
        ],
    }


@router.post("/promotions", response_model=PromoteResult)
def promotions(body: PromoteRequest, ctx: Ctx, claims: Caller) -> PromoteResult:
    """Recompute a run's evidence and, if every gate passes, register its model and point the
    alias at it (approved by the caller); otherwise change nothing and return the gates."""
    result = promote(
        ctx.settings,
        body.run_id,
        approved_by=claims.subject,
        alias=body.alias,
        reason=body.reason,
        engine=ctx.writer,
        overrides=Overrides(body.allow_dirty, body.allow_gaps, body.override_reason),
    )
    return PromoteResult(
        promoted=result.promoted,
        model_name=result.model_name,
        version=result.version,
        alias=result.alias,
        gates=[GateOutcome(**dataclasses.asdict(g)) for g in result.gates],
    )


@router.post("/rollbacks", response_model=RollbackResult)
def rollbacks(body: RollbackRequest, ctx: Ctx, claims: Caller) -> RollbackResult:
    """Move ``champion`` back to the previous version (or ``to``), recorded as the caller."""
    done = rollback(ctx.settings, claims.subject, body.reason, body.to, engine=ctx.writer)
    return RollbackResult(
        model_name=done.model_name,
        alias=done.alias,
        from_version=done.from_version,
        to_version=done.to_version,
    )
