"""What every request shares: the app's context (settings, engine, keys, limiter), and the
one dependency that authenticates the caller, checks the route's role and takes a rate-limit
token before any router code runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request, Security
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import Engine

from prism.api.ratelimit import RateLimiter
from prism.api.revocations import Revocations
from prism.api.rules import PUBLIC, rule_for
from prism.api.security import AuthError, Claims, SigningKeys, role_allows
from prism.core.settings import Settings

TOKEN_URL = "/api/v1/auth/token"

oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


@dataclass
class ApiContext:
    """The service's long-lived parts, built once by :func:`prism.api.app.create_app`.

    ``engine`` is the read-only login (``prism_reader``): every route reads through it.
    ``writer`` is the owner's engine, for the routes that must write (logins and keys, halts,
    limits, deployments, promotions, ingest, jobs, the audit trail) and nothing else."""

    settings: Settings
    engine: Engine
    writer: Engine
    keys: SigningKeys
    limiter: RateLimiter
    login_limiter: RateLimiter
    revocations: Revocations
    extra: dict[str, object] = field(default_factory=dict)


def context(request: Request) -> ApiContext:
    """Return the app's context."""
    found: ApiContext = request.app.state.prism
    return found


def bearer_claims(ctx: ApiContext, token: str | None) -> Claims:
    """Return the verified claims of a bearer token, or raise 401."""
    if not token:
        raise HTTPException(401, "not authenticated", {"WWW-Authenticate": "Bearer"})
    try:
        claims = ctx.keys.verify(token)
    except AuthError as err:
        raise HTTPException(401, str(err), {"WWW-Authenticate": "Bearer"}) from err
    ended = ctx.revocations.refusal(claims)
    if ended:
        raise HTTPException(401, ended, {"WWW-Authenticate": "Bearer"})
    return claims


def throttle(limiter: RateLimiter, caller: str) -> None:
    """Take a token for ``caller`` or raise 429 with Retry-After."""
    wait = limiter.take(caller)
    if wait:
        raise HTTPException(
            429, f"rate limit exceeded; retry in {wait} s", {"Retry-After": str(wait)}
        )


def authorize(request: Request, token: str | None = Security(oauth2)) -> None:
    """Enforce the route's rule (:data:`prism.api.rules.ROUTE_ROLES`) on the caller."""
    claims = admitted(request, token)
    if claims is not None:
        throttle(context(request).limiter, claims.subject)
        request.state.claims = claims


def admitted(request: Request, token: str | None) -> Claims | None:
    """Return the caller's claims if the route's rule admits them (None: a public route), else
    raise 401 or 403. No rate-limit token is taken."""
    needed = rule_for(request.method, request.scope["route"].path)
    if needed == PUBLIC:
        return None
    claims = bearer_claims(context(request), token)
    request.state.subject = claims.subject
    if not role_allows(claims.role, needed):
        raise HTTPException(403, f"role {claims.role} may not do this; it needs {needed}")
    return claims


def refusal(request: Request) -> HTTPException | None:
    """Return the 401/403 a request that failed before :func:`authorize` ran (FastAPI reads
    and parses the body before any dependency) would have got, so an unauthenticated caller
    learns nothing from the body check; None when it would have been admitted."""
    if "route" not in request.scope or hasattr(request.state, "claims"):
        return None
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    try:
        admitted(request, token if scheme.lower() == "bearer" else None)
    except HTTPException as refused:
        return refused
    return None


def caller(request: Request) -> Claims:
    """Return the authenticated caller's claims (routes behind :func:`authorize`)."""
    claims: Claims = request.state.claims
    return claims
