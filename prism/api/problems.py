"""Errors as RFC 9457 problem details (``application/problem+json``): ``type``, ``title``,
``status``, ``detail`` and ``instance`` (the path), the same shape for every failure, with
Prism's own errors translated at this edge (a config error is the caller's 400, missing data
a 404) so no traceback ever reaches a client. :func:`document` makes the OpenAPI schema say so:
every operation lists the errors it can answer, each as ``application/problem+json``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from prism.api.deps import refusal
from prism.core.errors import ConfigError, DataUnavailable, PrismError, TransientError

PROBLEM = "application/problem+json"
ERRORS: dict[int, str] = {
    400: "the request names something that does not exist or breaks a rule",
    401: "not authenticated (no, a malformed, an expired or a foreign token)",
    403: "role too low",
    404: "no such data",
    429: "rate limited; retry after Retry-After seconds",
    503: "a service Prism needs is unavailable",
}
"""The errors any operation may answer (422 is listed where a request has parameters)."""
PROBLEM_REF = "#/components/schemas/Problem"


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


def document(app: FastAPI) -> None:
    """Have ``app``'s OpenAPI schema document its errors as problem details: each operation
    gets :data:`ERRORS` and FastAPI's 422 loses its ``HTTPValidationError`` body for the
    Problem one (what :func:`install` answers), and a route's ``{"model": Problem}`` error
    responses get the problem+json media type it is answered with. An error response a route
    documents with other content is left as the route wrote it. Routes added later are covered
    too, since the schema is rewritten when it is first built."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _describe_errors(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_errors(schema: dict[str, Any]) -> None:
    from prism.api.models import Problem

    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    body = {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                content = response.get("content") or {}
                default_422 = "HTTPValidationError" in str(content)
                as_json = content.get("application/json", {}).get("schema", {})
                problem_as_json = set(content) == {"application/json"} and as_json == {
                    "$ref": PROBLEM_REF
                }
                if status[0] in "45" and (not content or default_422 or problem_as_json):
                    response["content"] = body
                    if status == "422":
                        response["description"] = "a parameter or the body does not validate"


def _data_error(exc: BaseException) -> str | None:
    """Return the first line of a PostgreSQL data error (a value it cannot take, such as a NUL
    character in text) anywhere in ``exc``'s chain (pandas and SQLAlchemy wrap it), else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.DataError):
            return str(seen).splitlines()[0] if str(seen) else type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:
            exc = refusal(request) or exc
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), request.url.path, headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        refused = refusal(request)
        if refused is not None:
            return await http_error(request, refused)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(422, detail, request.url.path, errors=errors)

    async def prism_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PrismError)
        return problem(_status_of(exc), str(exc), request.url.path)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        stored = _data_error(exc)
        if stored is None:
            raise exc
        return problem(400, f"a value the database refuses: {stored}", request.url.path)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        stored = _data_error(exc)
        if stored is not None:
            return problem(400, f"a value the database refuses: {stored}", request.url.path)
        return problem(500, f"internal error ({type(exc).__name__})", request.url.path)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(PrismError, prism_error)
    # Handled before the catch-all, so a value the database refuses is a plain 400 answer, not
    # an error Starlette's outermost middleware re-raises after answering.
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(psycopg.DataError, database_error)
    app.add_exception_handler(Exception, unexpected)
