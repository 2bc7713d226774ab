"""The Prism API: one FastAPI app, assembled from a router per domain.

:func:`create_app` is the composition root: it builds the context (settings, the read-only
engine every route reads through and the owner's for the routes that write, signing keys, rate
limiters, the stream hub, the background job runner), installs the problem-details error
handlers, the one authorisation dependency every route passes through
(:func:`prism.api.deps.authorize`), the audit of every mutating call (``audit.system_events``,
with the caller as ``subject``), the Prometheus request metrics and, only when origins are
configured, CORS. A route with no rule in :data:`prism.api.rules.ROUTE_ROLES` stops the app
from being built.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.routing import APIWebSocketRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import Engine

from prism.api import problems
from prism.api.deps import ApiContext, authorize, caller
from prism.api.jobs import JobRunner
from prism.api.models import CheckOutcome, Readiness
from prism.api.ratelimit import RateLimiter
from prism.api.ready import readiness
from prism.api.revocations import Revocations
from prism.api.routers import admin, auth, data, registry, research, runner
from prism.api.rules import rule_for
from prism.api.security import AuthError, SigningKeys, role_allows
from prism.api.stream import SLOW_CLIENT, UNAUTHORISED, Hub, Subscriber
from prism.core.events import record_event
from prism.core.settings import Settings
from prism.monitoring.access import reader_engine

VERSION = "1"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGINS_PER_MINUTE = 10
USAGE = 'send {"subscribe": [channels], "symbols": [symbols]}'


def conninfo(engine: Engine) -> str:
    """Return the libpq URL of ``engine``'s database (for the listening connection)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def create_app(settings: Settings, engine: Engine, reader: Engine | None = None) -> FastAPI:
    """Return the API app over ``engine`` (the owner's, already migrated) and ``settings``;
    reads go through ``reader`` (default: the read-only login,
    :func:`prism.monitoring.access.reader_engine`)."""
    ctx = ApiContext(
        settings=settings,
        engine=reader if reader is not None else reader_engine(settings),
        writer=engine,
        keys=SigningKeys.from_settings(settings),
        limiter=RateLimiter(settings.api_rate_per_minute),
        login_limiter=RateLimiter(LOGINS_PER_MINUTE),
        revocations=Revocations(engine),
    )
    hub = Hub(conninfo(engine))
    ctx.extra["hub"] = hub
    jobs = JobRunner(engine, settings.api_job_workers)
    ctx.extra["jobs"] = jobs

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(jobs.recover)
        yield
        await hub.stop()
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(
        title="Prism API",
        version=VERSION,
        description="Market data, research, registry and the live runner of Prism.",
        lifespan=lifespan,
    )
    app.state.prism = ctx
    problems.install(app)
    problems.document(app)
    guarded = [Depends(authorize)]
    for module in (auth, admin, data, research, registry, runner):
        app.include_router(module.router, dependencies=guarded)
    _system_routes(app, ctx, guarded)
    _stream_route(app, ctx, hub)
    _observe(app, ctx)
    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for method, path in served_routes(app):
        rule_for(method, path)
    return app


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Return every ``(method, path template)`` the app serves (``WS`` for WebSockets), read
    from its OpenAPI schema, which lists included routers' routes too."""
    methods = {"get", "post", "put", "patch", "delete"}
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in methods
    }
    served |= {("WS", r.path) for r in app.routes if isinstance(r, APIWebSocketRoute)}
    return served


def _system_routes(app: FastAPI, ctx: ApiContext, guarded: list[Any]) -> None:
    registry = CollectorRegistry()
    ctx.extra["metrics"] = registry

    @app.get("/health", tags=["system"], dependencies=guarded)
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["system"],
        dependencies=guarded,
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "a dependency failed"}},
    )
    def ready(response: Response) -> Readiness:
        """Readiness: the database (as the read-only login), the MLflow store, the Prefect API,
        each enabled deployment's broker, feed staleness and the alert outbox, each by name with
        why it failed; a dependency that does not answer within ``api_ready_timeout`` seconds
        is failed (the answer never waits longer). 503 when any check failed."""
        checks = readiness(ctx.engine, ctx.settings)
        ok = all(c.ok for c in checks)
        if not ok:
            response.status_code = 503
        return Readiness(
            status="ok" if ok else "failed",
            checks=[CheckOutcome(**dataclasses.asdict(c)) for c in checks],
        )

    @app.get("/metrics", tags=["system"], dependencies=guarded, response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics of this API process."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _observe(app: FastAPI, ctx: ApiContext) -> None:
    registry: CollectorRegistry = ctx.extra["metrics"]  # type: ignore[assignment]
    latency = Histogram(
        "prism_api_request_seconds",
        "API request latency",
        ["method", "route", "status"],
        registry=registry,
    )
    refusals = Counter(
        "prism_api_refusals_total",
        "API requests refused (401/403/429)",
        ["status"],
        registry=registry,
    )

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        latency.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        if response.status_code in (401, 403, 429):
            refusals.labels(str(response.status_code)).inc()
        if request.method in MUTATING:
            subject = getattr(request.state, "subject", None) or "anonymous"
            status = response.status_code
            await run_in_threadpool(
                record_event,
                ctx.writer,
                "api_call",
                "info" if status < 400 else "warning",
                "api",
                f"{request.method} {request.url.path} -> {status} by {subject}",
                {
                    "subject": subject,
                    "method": request.method,
                    "path": request.url.path,
                    "route": path,
                    "status": status,
                    "client": request.client.host if request.client else None,
                },
            )
        return response


def _stream_route(app: FastAPI, ctx: ApiContext, hub: Hub) -> None:
    @app.get(
        "/api/v1/stream/sse",
        tags=["stream"],
        dependencies=[Depends(authorize)],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    async def server_sent_events(
        request: Request,
        channels: str,
        symbols: str = "",
        queue: int = 0,
    ) -> StreamingResponse:
        """The stream as Server-Sent Events for simple clients: ``channels`` and ``symbols``
        comma separated; each message is ``event: <channel>`` with the row as JSON ``data``.
        A client that falls behind gets ``event: dropped`` and the response ends."""
        claims = caller(request)
        limit = ctx.settings.api_stream_queue
        subscriber = Subscriber(claims.role, min(queue, limit) if queue > 0 else limit)
        refused = subscriber.subscribe(_split(channels), _split(symbols))
        if refused:
            raise HTTPException(403, "; ".join(f"{c}: {why}" for c, why in refused.items()))
        await hub.start()
        hub.subscribers.add(subscriber)

        async def events() -> AsyncIterator[str]:
            try:
                yield f"event: subscribed\ndata: {json.dumps(sorted(subscriber.channels))}\n\n"
                while not subscriber.overflowed.is_set():
                    try:
                        message = await asyncio.wait_for(subscriber.queue.get(), 5)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    data = json.dumps(message["data"], default=str)
                    yield f"event: {message['channel']}\ndata: {data}\n\n"
                yield "event: dropped\ndata: slow client: queue full\n\n"
            finally:
                hub.subscribers.discard(subscriber)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.websocket("/api/v1/stream")
    async def stream(websocket: WebSocket, token: str = "", queue: int = 0) -> None:
        """Live orders, fills, bars, alerts and events (see :mod:`prism.api.stream`); ``queue``
        asks for a smaller per-client buffer than ``api_stream_queue``."""
        try:
            claims = ctx.keys.verify(token)
        except AuthError as err:
            await websocket.close(code=UNAUTHORISED, reason=str(err))
            return
        ended = await run_in_threadpool(ctx.revocations.refusal, claims)
        if ended:
            await websocket.close(code=UNAUTHORISED, reason=ended)
            return
        if not role_allows(claims.role, rule_for("WS", "/api/v1/stream")):
            await websocket.close(code=UNAUTHORISED, reason="role too low")
            return
        await hub.start()
        await websocket.accept()
        limit = ctx.settings.api_stream_queue
        subscriber = Subscriber(claims.role, min(queue, limit) if queue > 0 else limit)
        hub.subscribers.add(subscriber)
        commands = asyncio.create_task(_commands(websocket, subscriber))
        overflow = asyncio.create_task(subscriber.overflowed.wait())
        try:
            while True:
                message = asyncio.create_task(subscriber.queue.get())
                done, _ = await asyncio.wait(
                    {message, commands, overflow}, return_when=asyncio.FIRST_COMPLETED
                )
                if overflow in done:
                    message.cancel()
                    await websocket.close(code=SLOW_CLIENT, reason="slow client: queue full")
                    return
                if commands in done:
                    message.cancel()
                    return
                await websocket.send_json(message.result())
        except WebSocketDisconnect:
            return
        finally:
            hub.subscribers.discard(subscriber)
            for task in (commands, overflow):
                task.cancel()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def _commands(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Apply the client's subscribe messages until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            try:
                command = await websocket.receive_json()
                channels = [str(c) for c in command.get("subscribe", [])]
                symbols = [str(s) for s in command.get("symbols", [])]
            except (ValueError, AttributeError, TypeError):
                await websocket.send_json({"error": USAGE})
                continue
            refused = subscriber.subscribe(channels, symbols)
            await websocket.send_json(
                {"subscribed": sorted(subscriber.channels), "refused": refused}
            )
