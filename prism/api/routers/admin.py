"""``/api/v1/admin``: users and API keys (role ``admin``), the same functions as
``prism api users`` and ``prism api keys``; the creator recorded is the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from prism.api import accounts
from prism.api.deps import ApiContext, caller, context
from prism.api.models import CreatedKey, NewKeyRequest, NewUser, Row
from prism.api.security import Claims

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

Ctx = Annotated[ApiContext, Depends(context)]
Caller = Annotated[Claims, Depends(caller)]


@router.get("/users")
def users(ctx: Ctx) -> list[Row]:
    """List the API users (no password hashes)."""
    return accounts.list_users(ctx.writer)


@router.post("/users", status_code=201)
def add_user(body: NewUser, ctx: Ctx, claims: Caller) -> Row:
    """Create an API user."""
    accounts.add_user(ctx.writer, body.username, body.password, body.role, claims.subject)
    return {"username": body.username, "role": body.role}


@router.post("/users/{username}/disable", status_code=204)
def disable_user(username: str, ctx: Ctx, claims: Caller) -> None:
    """Disable an API user: no new login; tokens already issued are refused within seconds."""
    accounts.disable_user(ctx.writer, username, claims.subject)


@router.get("/keys")
def keys(ctx: Ctx) -> list[Row]:
    """List the API keys (no secrets)."""
    return accounts.list_keys(ctx.writer)


@router.post("/keys", status_code=201, response_model=CreatedKey)
def create_key(body: NewKeyRequest, ctx: Ctx, claims: Caller) -> CreatedKey:
    """Create an API key; its secret is in this response only."""
    made, expires = accounts.create_key(ctx.writer, body.name, body.role, claims.subject, body.days)
    return CreatedKey(key_id=made.key_id, api_key=made.key, role=body.role, expires_at=expires)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: str, ctx: Ctx, claims: Caller) -> None:
    """Revoke an API key; the tokens it was exchanged for are refused within seconds."""
    accounts.revoke_key(ctx.writer, key_id, claims.subject)
