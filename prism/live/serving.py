"""What ``prism runner serve`` needs besides the flows: a local Prefect server when none is
configured, one shutdown path for the processes it starts, and the ingest step its
``ingest_bars`` flow runs.

Schedules need a Prefect server. With ``PREFECT_API_URL`` unset, :func:`local_prefect_server`
starts ``prefect server start`` on a free local port (its SQLite database under the workspace's
Prefect home), records it in ``<prefect home>/server.json``, and stops it on exit; a server a
killed run left behind is found through that record and stopped at the next start.

:func:`serve_runner` is ``prism runner serve``: it starts the server, then ``python -m
runner.serve`` with that server's URL in its environment (the one place every child, and every
flow-run process under it, takes the API URL from), each in its own session so a terminal's
Ctrl-C reaches only the supervisor. SIGINT and SIGTERM take one path: the runner takes no new
flow runs and gives the running ones ``PRISM_RUNNER_STOP_SECONDS`` to finish (then cancels them
in Prefect; the next cycle's pending-order recovery settles what they left), the server is
stopped, any process left in either session is killed and named, and the command exits 0; a
second signal forces the stop and exits 130.

Longer than most modules (about 530 lines) because starting, recording, draining and stopping
the server and the runner are one lifecycle whose steps share the process bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, cast

import pandas as pd
from sqlalchemy import Engine, text

from prism.core.errors import PrismError, TransientError
from prism.core.settings import Settings, service_environment
from prism.data.gaps import SourceFactory, backfill, find_gaps, is_feed, source_factory
from prism.data.store import ingest
from prism.live.deployments import list_deployments

STARTUP_SECONDS = 180.0
SERVER_STOP_SECONDS = 15.0
"""How long the Prefect server gets to exit on SIGTERM before it is killed."""
RUNNER_STOP_MARGIN = 30.0
"""Beyond ``PRISM_RUNNER_STOP_SECONDS``: time for the runner to cancel what is still running and
exit, before the supervisor kills its session."""
RECORD = "server.json"
"""The local server's record in the Prefect home: its pid, port, and the process that owns it."""


class ServeInterrupted(PrismError):
    """A stop was asked for while the local Prefect server was still starting."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _stat(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/PID/stat`` after the command name (state, ppid, pgrp,
    session, ...), or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Return the start time of process ``pid`` (clock ticks since boot), which tells a process
    from a later one that reused its pid; None if it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def session_processes(session: int) -> list[int]:
    """Return the live (not zombie) processes of session ``session``: a process started with
    ``start_new_session`` and everything it started, even after it exited itself."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def flow_run_processes() -> list[int]:
    """Return this process's descendants in its own session: the flow-run processes of a
    Prefect runner here (a local server started here has a session of its own)."""
    me, session = os.getpid(), os.getsid(0)
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(me, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def stop_session(session: int, grace: float) -> list[int]:
    """Stop every process of ``session``: SIGTERM, up to ``grace`` seconds to exit, then
    SIGKILL; return the pids that were running."""
    found = session_processes(session)
    for pid in found:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in session_processes(session):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@dataclass(frozen=True)
class ServerRecord:
    """A local Prefect server started by :func:`local_prefect_server`: its pid (also its
    session), port and start time, the process that started it (and its start time), and the
    runner served against it, if any."""

    pid: int
    port: int
    started: int | None
    owner: int
    owner_started: int | None
    runner: int | None = None
    """The runner process ``prism runner serve`` started against this server (its session)."""

    @property
    def api_url(self) -> str:
        """Return the server's API URL."""
        return f"http://127.0.0.1:{self.port}/api"

    def owner_alive(self) -> bool:
        """Return whether the process that started the server still runs."""
        return self.owner_started is not None and start_time(self.owner) == self.owner_started


def read_record(settings: Settings) -> ServerRecord | None:
    """Return the record of the workspace's local Prefect server, if there is a readable one."""
    try:
        return ServerRecord(**json.loads((settings.prefect_home / RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def stop_stale_server(settings: Settings) -> str | None:
    """Stop the local Prefect server a killed run left behind (found by its record), and return
    what was done, or None if there was nothing to do. Refuses while the process that started
    it still runs: that is another runner serving this workspace."""
    path = settings.prefect_home / RECORD
    if not path.exists():
        return None
    record = read_record(settings)
    if record is None:
        path.unlink(missing_ok=True)
        return f"removed an unreadable record of a Prefect server ({path})"
    if record.owner != os.getpid() and record.owner_alive():
        raise PrismError(
            f"another process (pid {record.owner}) serves this workspace with the Prefect "
            f"server at {record.api_url}; stop it first (Ctrl-C there, or kill {record.owner})"
        )
    runner = session_processes(record.runner) if record.runner else []
    stopped_runner = stop_session(record.runner, 5.0) if record.runner and runner else []
    leader_alive = record.started is not None and start_time(record.pid) == record.started
    members = session_processes(record.pid)
    if not leader_alive:
        members = [pid for pid in members if b"prefect" in _cmdline(pid)]
    stopped = stop_session(record.pid, SERVER_STOP_SECONDS) if members else []
    path.unlink(missing_ok=True)
    also = f" and its runner ({len(stopped_runner)} process(es))" if stopped_runner else ""
    if stopped or stopped_runner:
        return (
            f"stopped a Prefect server left behind by an earlier run (pid {record.pid}, port "
            f"{record.port}, {len(stopped)} process(es)){also}; its owner, pid {record.owner}, "
            "is gone"
        )
    if _healthy(record.api_url):
        return f"port {record.port} of an earlier Prefect server still answers, not from it"
    return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextmanager
def local_prefect_server(
    settings: Settings, stop_requested: Callable[[], bool] | None = None
) -> Iterator[str]:
    """Yield the Prefect API URL: ``PREFECT_API_URL`` if set, else that of a local server
    started here (and stopped, with every process of its session, when the block exits).

    A server a killed run left behind is stopped first, with a message on stderr.
    ``stop_requested`` is polled while the server starts: when it answers True the start is
    abandoned (:class:`ServeInterrupted`)."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    note = stop_stale_server(settings)
    if note:
        print(f"prism: {note}", file=sys.stderr)
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        **service_environment(settings),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    prefect = Path(sys.executable).parent / "prefect"
    log = settings.prefect_home / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ServerRecord(server.pid, port, start_time(server.pid), os.getpid(), None)
    record = ServerRecord(**{**asdict(record), "owner_started": start_time(os.getpid())})
    (settings.prefect_home / RECORD).write_text(json.dumps(asdict(record)))
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(api_url):
            if server.poll() is not None:
                raise PrismError(f"the local Prefect server exited at start; see {log}")
            if stop_requested is not None and stop_requested():
                raise ServeInterrupted("stopped while the local Prefect server was starting")
            if time.monotonic() > deadline:
                raise TransientError(
                    f"the local Prefect server did not answer within {STARTUP_SECONDS:.0f} s; "
                    f"see {log}, or set PREFECT_API_URL to a running server"
                )
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = api_url
        yield api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        stop_session(server.pid, SERVER_STOP_SECONDS)
        server.wait()
        current = read_record(settings)
        if current is not None and (current.pid, current.owner) == (record.pid, record.owner):
            (settings.prefect_home / RECORD).unlink(missing_ok=True)


def record_runner(settings: Settings, runner: int) -> None:
    """Add the runner process served against the workspace's local server to its record, so a
    run killed before it could stop its runner has it stopped at the next start too."""
    record = read_record(settings)
    if record is not None and record.owner == os.getpid():
        path = settings.prefect_home / RECORD
        path.write_text(json.dumps({**asdict(record), "runner": runner}))


class StopSignals:
    """SIGINT and SIGTERM as one shutdown path, however often they arrive: the first asks for
    a stop, any later one forces it. Handlers are installed for the ``with`` block."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)

    @property
    def requested(self) -> bool:
        """Return whether a stop was asked for."""
        return bool(self.received)

    @property
    def forced(self) -> bool:
        """Return whether a second signal forced the stop."""
        return len(self.received) > 1


def serve_runner(
    settings: Settings,
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    out: TextIO | None = None,
) -> int:
    """Run ``command`` (``python -m runner.serve``) against the configured or a local Prefect
    server until it exits or SIGINT/SIGTERM stops it, as described in this module; return
    the exit status: the runner's own if it stopped by itself, 0 after a requested stop, 130
    after a forced one."""
    from prism.live.alerts import check_alert_urls

    out = out or sys.stderr
    check_alert_urls(settings)
    code: int | None = None
    with StopSignals() as signals:
        try:
            with local_prefect_server(settings, lambda: signals.requested) as api_url:
                runner = subprocess.Popen(
                    list(command),
                    env={**env, "PREFECT_API_URL": api_url},
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_stop_with_parent,
                )
                record_runner(settings, runner.pid)
                try:
                    code = _supervise(runner, signals, settings.runner_stop_seconds, out)
                finally:
                    if runner.poll() is None:
                        stop_session(runner.pid, 0)
                        runner.wait()
                    left = stop_session(runner.pid, 5.0)
                    if left:
                        print(
                            f"prism runner serve: killed {len(left)} process(es) the runner left "
                            f"behind: pids {', '.join(map(str, left))}",
                            file=out,
                        )
        except ServeInterrupted:
            print("prism runner serve: stopped before the Prefect server answered", file=out)
    if signals.forced:
        print(
            "prism runner serve: forced stop; flow runs still running were killed (the next "
            "cycle settles their orders)",
            file=out,
        )
        return 130
    if signals.requested:
        print(
            f"prism runner serve: stopped on {signals.received[0]}; no flow run and no Prefect "
            "server of this command is left running",
            file=out,
        )
        return 0
    return code if code is not None else 1


def _stop_with_parent() -> None:
    """In the runner's process before it runs: have Linux send it SIGTERM (its ordinary stop)
    when the supervisor dies, so a SIGKILLed ``prism runner serve`` leaves no runner behind
    (its server is stopped at the next start)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _supervise(
    runner: subprocess.Popen[bytes], signals: StopSignals, stop_seconds: float, out: TextIO
) -> int:
    """Wait for ``runner`` to exit or a stop to be asked for; on a stop, SIGTERM it (it takes no
    new flow runs and gives running ones ``stop_seconds``), kill its session if it overruns or
    the stop is forced, and return its exit status."""
    while runner.poll() is None and not signals.requested:
        time.sleep(0.2)
    if runner.returncode is not None:
        return runner.returncode
    print(
        f"prism runner serve: {signals.received[0]} received; taking no new flow runs, running "
        f"ones have {stop_seconds:g} s to finish (press Ctrl-C again to force)",
        file=out,
    )
    runner.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + stop_seconds + RUNNER_STOP_MARGIN
    while runner.poll() is None and not signals.forced and time.monotonic() < deadline:
        time.sleep(0.2)
    if runner.poll() is None:
        why = "forced" if signals.forced else f"the runner overran {stop_seconds:g} s"
        print(f"prism runner serve: {why}; killing the runner's processes", file=out)
        stop_session(runner.pid, 0 if signals.forced else 5.0)
    return runner.wait()


def serve_deployments(deployments: Sequence[Any], stop_seconds: float) -> str:
    """Serve Prefect ``deployments`` (``RunnerDeployment``) in this process until SIGINT or
    SIGTERM; then take no new flow runs, wait up to ``stop_seconds`` for running ones, cancel
    any still running, and return a line saying how it ended.

    Prefect's own ``serve`` cancels running flow runs at once on a stop (and its SIGTERM
    handler exits from inside a signal handler); this drains them instead: runs already started
    finish, runs picked up but not yet started are left Scheduled. It uses private attributes of
    Prefect 3.8's ``Runner`` (pinned below 3.9): ``_scheduled_run_poller`` (and its
    ``_state_proposer`` and ``_submitting_flow_run_ids``) and ``_loops_task_group``."""
    return asyncio.run(_serve(deployments, stop_seconds))


async def _serve(deployments: Sequence[Any], stop_seconds: float) -> str:
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=False)
    for deployment in deployments:
        await cast(Awaitable[Any], runner.add_deployment(deployment))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request(signum: int, frame: FrameType | None = None) -> None:
        loop.call_soon_threadsafe(stop.set)

    runner.handle_sigterm = request  # type: ignore[method-assign]  # start() installs it
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request)
    serving = asyncio.create_task(runner.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        stopping.cancel()
        serving.result()
        return "the runner stopped by itself"
    poller = runner._scheduled_run_poller
    poller.stopping = True
    runner.stopping = True

    async def refuse(flow_run: Any) -> bool:
        return False  # a run picked up but not yet Pending stays Scheduled, and is not started

    poller._state_proposer.propose_pending = refuse  # type: ignore[method-assign]
    running = len(poller._submitting_flow_run_ids)  # from Pending until the process exits
    loops = getattr(runner, "_loops_task_group", None)
    if loops is None:
        serving.cancel()
    else:
        loops.cancel_scope.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(serving), stop_seconds)
    except TimeoutError:
        # SIGTERM ends a flow-run process quietly and Prefect marks its run Crashed; Prefect's
        # own cancel_all cancels inside the engine, which prints tracebacks from each process
        left = flow_run_processes()
        for pid in left:
            _signal(pid, signal.SIGTERM)
        await asyncio.wait_for(serving, RUNNER_STOP_MARGIN)
        return (
            f"{len(left)} flow-run process(es) still running after {stop_seconds:g} s were "
            "stopped; Prefect marks their runs Crashed and the next cycle settles their orders"
        )
    except asyncio.CancelledError:
        pass
    return f"{running} flow run(s) in flight finished; no new ones were started"


def ensure_process_pool(name: str) -> bool:
    """Create the process work pool ``name`` with Prefect's default job template unless it
    exists; return whether it was created."""
    # Imported here: Prefect takes ~10 s to import; only the work-pool path needs it.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return True


def ingest_deployment_bars(
    engine: Engine,
    now: pd.Timestamp | None = None,
    registry: Mapping[str, SourceFactory] | None = None,
) -> dict[str, int]:
    """Fetch the bars newer than the newest stored one of every enabled deployment's series
    whose source is a live feed (Yahoo, a ccxt exchange: the source its newest bar came from),
    then backfill the open gaps of those series; return how many bars were inserted and how
    many gap bars were healed. ``registry`` replaces the network sources (tests)."""

    moment = now if now is not None else pd.Timestamp.now(tz="UTC")
    inserted = healed = 0
    for deployment in list_deployments(engine, enabled_only=True):
        with engine.connect() as conn:
            newest = conn.execute(
                text(
                    "SELECT DISTINCT ON (symbol) symbol, time, source FROM market_data.ohlcv "
                    "WHERE symbol = ANY(:s) AND timeframe = :tf ORDER BY symbol, time DESC"
                ),
                {"s": list(deployment.symbols), "tf": deployment.timeframe},
            ).all()
        for symbol, last, source_name in newest:
            factory = source_factory(source_name, registry) if is_feed(source_name) else None
            source = factory and factory(symbol, deployment.timeframe, pd.Timestamp(last), moment)
            if source is not None:
                inserted += ingest(engine, source).inserted
        gaps = find_gaps(engine, list(deployment.symbols), deployment.timeframe)
        healed += sum(result.filled for result in backfill(engine, gaps, registry))
    return {"inserted": inserted, "healed": healed}
