"""A database outage during a trade cycle (:func:`prism.live.cycle.run_guarded`), made real: the
cycle's engine reaches PostgreSQL through a TCP relay that drops its first connections (the
server is unreachable for them), then relays the rest to the real server. An outage shorter
than the retries trades as if nothing happened; one that lasts through them halts the
deployment with a critical alert once the database answers again, and raises DatabaseOutage;
one that never ends raises DatabaseOutage saying the halt could not be recorded either."""

from __future__ import annotations

import contextlib
import glob
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from prism.live import cycle, deployments
from prism.live.replay import replay_times
from tests.integration.runner_support import SYMBOLS, FortyPercentSource, deploy


class FlakyRelay:
    """A TCP listener on 127.0.0.1 that closes its first ``drop`` connections at once (the
    client sees the server go away) and relays every later one to ``target``."""

    def __init__(self, target: str | tuple[str, int], drop: int) -> None:
        self.target = target
        self.drop = drop
        self.dropped = 0
        self.relayed = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.dropped < self.drop:
                self.dropped += 1
                client.close()
                continue
            self.relayed += 1
            family = socket.AF_UNIX if isinstance(self.target, str) else socket.AF_INET
            server = socket.socket(family, socket.SOCK_STREAM)
            server.connect(self.target)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        source.close()

    def close(self) -> None:
        self.listener.close()


def _target(engine: Engine) -> str | tuple[str, int]:
    host = engine.url.query.get("host") or engine.url.host or "localhost"
    host = host if isinstance(host, str) else host[0]
    port = engine.url.port or 5432
    if host.startswith("/"):
        sockets = glob.glob(f"{host}/.s.PGSQL.{port}") or glob.glob(f"{host}/.s.PGSQL.*")
        return sockets[0]
    return (host, port)


@pytest.fixture
def relay_engine(engine) -> Iterator:
    """Return a factory of (engine through a relay dropping ``drop`` connections, relay)."""
    relays: list[FlakyRelay] = []
    engines: list[Engine] = []

    def make(drop: int) -> tuple[Engine, FlakyRelay]:
        relay = FlakyRelay(_target(engine), drop)
        query = {k: v for k, v in engine.url.query.items() if k != "host"}
        url = engine.url.set(host="127.0.0.1", port=relay.port, query=query).update_query_dict(
            {"sslmode": "disable", "gssencmode": "disable", "connect_timeout": "5"}
        )
        flaky = create_engine(url, poolclass=NullPool)
        relays.append(relay)
        engines.append(flaky)
        return flaky, relay

    yield make
    for flaky in engines:
        flaky.dispose()
    for relay in relays:
        relay.close()


@pytest.fixture
def fast(settings):
    """Settings retrying a cycle 3 times with millisecond backoff."""
    return settings.model_copy(update={"runner_db_attempts": 3, "runner_db_backoff_seconds": 0.01})


@pytest.fixture
def stocked(stocked):
    for name in ("out", "reference"):
        deploy(stocked, name)
    return stocked


def orders(engine, deployment: str) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT symbol, side, quantity, status FROM trading.orders "
                    "WHERE deployment = :d ORDER BY symbol"
                ),
                {"d": deployment},
            )
        ]


def outage_events(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT severity, metadata FROM audit.system_events WHERE event_type = 'db_outage'"
            )
        ).all()


def test_an_outage_shorter_than_the_retries_trades_normally(stocked, fast, relay_engine):
    flaky, relay = relay_engine(drop=2)
    as_of = replay_times(stocked, list(SYMBOLS), 1)[-1]

    report = cycle.run_guarded(flaky, fast, "out", as_of=as_of, source=FortyPercentSource())
    reference = cycle.run_cycle(
        stocked, fast, "reference", as_of=as_of, source=FortyPercentSource()
    )

    assert relay.dropped == 2 and relay.relayed > 0
    assert (report.outcome, report.orders) == ("traded", reference.orders)
    assert orders(stocked, "out") == orders(stocked, "reference") != []
    assert not deployments.get_deployment(stocked, "out").halted
    assert outage_events(stocked) == []


def test_an_outage_through_every_retry_halts_with_a_critical_alert(stocked, fast, relay_engine):
    flaky, relay = relay_engine(drop=fast.runner_db_attempts)
    as_of = replay_times(stocked, list(SYMBOLS), 1)[-1]

    with pytest.raises(cycle.DatabaseOutage, match="deployment halted"):
        cycle.run_guarded(flaky, fast, "out", as_of=as_of, source=FortyPercentSource())

    assert relay.dropped == fast.runner_db_attempts
    halted = deployments.get_deployment(stocked, "out")
    assert halted.halted and "database unreachable through 3 tries" in str(halted.halt_reason)
    assert [(s, m["deployment"]) for s, m in outage_events(stocked)] == [("critical", "out")]
    assert orders(stocked, "out") == []


def test_an_outage_that_never_ends_raises_without_a_halt(stocked, fast, relay_engine):
    flaky, relay = relay_engine(drop=1_000)
    as_of = replay_times(stocked, list(SYMBOLS), 1)[-1]

    with pytest.raises(cycle.DatabaseOutage, match="could not record the halt"):
        cycle.run_guarded(flaky, fast, "out", as_of=as_of, source=FortyPercentSource())

    assert relay.dropped == fast.runner_db_attempts + 1 and relay.relayed == 0
    assert not deployments.get_deployment(stocked, "out").halted
    assert outage_events(stocked) == []
