"""``/api/v1/auth``: tokens from a password (OAuth2 password flow) or a long-lived API key,
and who the caller is. Logins are rate-limited per client address and per user name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm

from prism.api.accounts import Principal, authenticate_key, authenticate_password
from prism.api.deps import ApiContext, caller, context, throttle
from prism.api.models import ApiKeyLogin, Me, Token
from prism.api.security import AuthError, Claims

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _issue(ctx: ApiContext, who: Principal) -> Token:
    token, expires = ctx.keys.issue(
        who.subject, who.role, ctx.settings.api_token_minutes, who.credential
    )
    return Token(access_token=token, expires_at=expires, role=who.role)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", response_model=Token)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ctx: Annotated[ApiContext, Depends(context)],
) -> Token:
    """OAuth2 password flow: exchange a user name and password for an access token."""
    request.state.subject = form.username
    throttle(ctx.login_limiter, f"ip:{_client(request)}")
    throttle(ctx.login_limiter, f"user:{form.username}")
    try:
        who = await run_in_threadpool(
            authenticate_password, ctx.writer, form.username, form.password
        )
    except AuthError as err:
        raise HTTPException(401, str(err), {"WWW-Authenticate": "Bearer"}) from err
    return _issue(ctx, who)


@router.post("/api-key", response_model=Token)
def api_key(
    request: Request, body: ApiKeyLogin, ctx: Annotated[ApiContext, Depends(context)]
) -> Token:
    """Exchange a long-lived API key (``prism api keys create``) for an access token."""
    throttle(ctx.login_limiter, f"ip:{_client(request)}")
    try:
        who = authenticate_key(ctx.writer, body.api_key)
    except AuthError as err:
        raise HTTPException(401, str(err), {"WWW-Authenticate": "Bearer"}) from err
    request.state.subject = who.subject
    return _issue(ctx, who)


@router.get("/me", response_model=Me)
def me(claims: Annotated[Claims, Depends(caller)]) -> Me:
    """Return who the token belongs to and its role."""
    return Me(
        subject=claims.subject,
        role=claims.role,
        credential=claims.credential,
        expires_at=claims.expires,
    )
