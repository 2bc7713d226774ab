"""Errors as RFC 9457 problem details (``application/problem+json``): ``type``, ``title``,
``status``, ``detail`` and ``instance`` (the path), the same shape for every failure, with
Prism's own errors translated at this edge (a config error is the caller's 400, missing data
a 404) so no traceback ever reaches a client.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from prism.core.errors import ConfigError, DataUnavailable, PrismError, TransientError

PROBLEM = "application/problem+json"


def problem(
    status: int,
    detail: str,
    instance: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Return a problem-details response."""
    title = HTTPStatus(status).phrase
    body = {
        "type": f"https://prism.invalid/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _status_of(err: PrismError) -> int:
    if isinstance(err, DataUnavailable):
        return 404
    if isinstance(err, TransientError):
        return 503
    if isinstance(err, ConfigError):
        return 400
    return 500


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), request.url.path, headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(422, detail, request.url.path, errors=errors)

    async def prism_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PrismError)
        return problem(_status_of(exc), str(exc), request.url.path)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, f"internal error ({type(exc).__name__})", request.url.path)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(PrismError, prism_error)
    app.add_exception_handler(Exception, unexpected)
