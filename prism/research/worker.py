"""The resident research worker: one background process per workspace that keeps MLflow and
papermill imported and a warm Jupyter kernel (:class:`~prism.research.kernels.WarmKernel`), so a
second ``prism research run`` pays for the notebook's own work and none of the start-up.

This module is the client's side and what both sides share (paths, state, fingerprint); the
process itself is :mod:`prism.research.worker_server`. The first run starts it, detached, in the
workspace (``PRISM_HOME/research-worker/``: a Unix
socket, an authkey file readable by its owner only, ``worker.json`` with its pid and
fingerprint, and its log). The client (:func:`run_in_worker`) sends the notebook and its
parameters and relays what comes back: the papermill progress, the run's id, then its result or
its error, which it raises as the same :class:`~prism.core.errors.PrismError` an in-process run
raises. Rules a quant relies on:

- Never stale: the worker records a :func:`fingerprint` of what decides its behaviour (size and
  mtime of every source file under ``prism/`` and ``research/``, the interpreter and its
  site-packages, the ``PRISM_*``/``MLFLOW_*``/``PREFECT_*`` environment, the ``.env`` files and
  the working directory) before it imports anything; a client whose fingerprint differs stops it
  and starts a new one, so an edited strategy is always the one that runs.
- One notebook at a time: runs are queued and executed one after another on the worker's only
  kernel; a waiting client is told what it waits for.
- A failed notebook shuts its kernel down (the next run gets a new one); a killed worker is
  noticed by the next client (no live pid, or no answer), which starts another.
- Ctrl-C in a client interrupts the kernel: the notebook fails in the running cell and its
  MLflow run is marked FAILED, as an in-process run's is.
- It exits on its own after ``PRISM_RESEARCH_WORKER_IDLE_SECONDS`` without a run;
  ``prism research worker status|stop`` show and stop it.

Only the standard library is imported at module level: the client side must stay cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from prism.core import errors as prism_errors
from prism.core.errors import ConfigError, PrismError
from prism.core.settings import Settings, project_root, service_environment
from prism.research.notebooks import NotebookFailed, ResearchRun, require_notebook

FOLDER = "research-worker"
SOURCE_FOLDERS = ("prism", "research")
ENVIRONMENT_PREFIXES = ("PRISM_", "MLFLOW_", "PREFECT_")
ENVIRONMENT_NAMES = ("PYTHONPATH", "VIRTUAL_ENV")
UNFINGERPRINTED = {"PRISM_RESEARCH_WORKER", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"}
"""Not what a worker's behaviour depends on: whether to use the worker at all, and the state
MLflow exports once a process has run a notebook (a research run sets its experiment and run
itself)."""
START_SECONDS = 180.0
STOP_SECONDS = 30.0
BUSY_STOP_SECONDS = 3600.0
"""How long a client waits for a stale worker to finish another client's notebook."""
PRELUDE = "from prism.backtest.tearsheet import keep_png_renderer as _keep\n_keep()\ndel _keep\n"
"""Run once on each of the worker's kernels: keep one Chromium for the tear sheet PNGs."""
SOCKET_LIMIT = 100
"""Unix socket paths longer than this (the kernel's limit is 107) go under /tmp instead."""


def fingerprint(settings: Settings, cwd: Path | None = None) -> str:
    """Return a hash of everything a worker's behaviour depends on that it reads once: the size
    and mtime of each ``.py`` under ``prism/`` and ``research/``, the interpreter and its
    site-packages folder (changed by installs), the ``PRISM_*``, ``MLFLOW_*`` and ``PREFECT_*``
    variables (and ``PYTHONPATH``, ``VIRTUAL_ENV``), the ``.env`` files and the directory.

    The variables are read as a run sets them (:func:`~prism.core.settings.service_environment`
    and ``MLFLOW_TRACKING_URI``, which ``mlflow.set_tracking_uri`` exports, filled in where
    unset), so a process that has already run a notebook in-process hashes the same as one that
    has not."""
    root = project_root()
    environment = {
        **service_environment(settings),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        **os.environ,
    }
    folder = (cwd or Path.cwd()).resolve()
    digest = hashlib.sha256()
    for name in SOURCE_FOLDERS:
        for path in sorted((root / name).rglob("*.py")):
            with contextlib.suppress(OSError):
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for path in (Path(sys.executable), site / "site-packages"):
        digest.update(f"{path}\0{_stamp(path)}\n".encode())
    for name in sorted(environment):
        if name in UNFINGERPRINTED:
            continue
        if name.startswith(ENVIRONMENT_PREFIXES) or name in ENVIRONMENT_NAMES:
            digest.update(f"{name}={environment[name]}\n".encode())
    for env_file in (root / ".env", folder / ".env"):
        digest.update(f"{env_file}\0{_stamp(env_file)}\n".encode())
    digest.update(str(folder).encode())
    return digest.hexdigest()[:16]


def _stamp(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "absent"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


@dataclass(frozen=True)
class WorkerPaths:
    """Where a workspace's worker keeps its socket, key, state and log."""

    folder: Path

    def socket(self, pid: int) -> Path:
        """The Unix socket worker ``pid`` listens on, its own so that a worker on its way out
        never removes its successor's (under /tmp when the workspace's path is too long)."""
        path = self.folder / f"worker-{pid}.sock"
        if len(str(path)) <= SOCKET_LIMIT:
            return path
        tag = hashlib.sha256(str(self.folder).encode()).hexdigest()[:16]
        return Path("/tmp") / f"prism-research-worker-{tag}-{pid}.sock"

    @property
    def authkey(self) -> Path:
        """The shared secret a client must prove (mode 0600)."""
        return self.folder / "authkey"

    @property
    def state(self) -> Path:
        """``worker.json``: pid, fingerprint, socket, start time."""
        return self.folder / "worker.json"

    @property
    def log(self) -> Path:
        """The worker's stdout and stderr."""
        return self.folder / "worker.log"

    @property
    def lock(self) -> Path:
        """Held by a client while it checks, stops or starts the worker."""
        return self.folder / "lock"


def worker_paths(settings: Settings) -> WorkerPaths:
    """Return the paths of the worker of ``settings``' workspace."""
    return WorkerPaths(settings.home / FOLDER)


@dataclass(frozen=True)
class WorkerState:
    """What ``worker.json`` records about a running worker."""

    pid: int
    fingerprint: str
    socket: str
    started: float

    @classmethod
    def read(cls, paths: WorkerPaths) -> WorkerState | None:
        """Return the recorded state, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(paths.state.read_text())
            return cls(
                int(data["pid"]), str(data["fingerprint"]), str(data["socket"]), data["started"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Return whether the recorded pid is a live research worker (not a reused pid)."""
        try:
            command = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"prism.research.worker" in command


# --- client side -----------------------------------------------------------------------------


def read_key(paths: WorkerPaths) -> bytes:
    """Return the authkey both sides of the worker's socket prove themselves with."""
    return paths.authkey.read_bytes()


def _new_key(paths: WorkerPaths) -> bytes:
    key = os.urandom(32)
    paths.authkey.unlink(missing_ok=True)
    descriptor = os.open(paths.authkey, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key)
    return key


@contextlib.contextmanager
def _locked(paths: WorkerPaths) -> Iterator[None]:
    paths.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(paths.lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connect(paths: WorkerPaths, state: WorkerState) -> Connection | None:
    try:
        return Client(state.socket, family="AF_UNIX", authkey=read_key(paths))
    except (OSError, EOFError, AuthenticationError):
        return None


def _request(paths: WorkerPaths, state: WorkerState, message: dict[str, Any]) -> Any:
    connection = _connect(paths, state)
    if connection is None:
        return None
    with connection:
        connection.send(message)
        try:
            return connection.recv()
        except (EOFError, OSError):
            return None


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not WorkerState(pid, "", "", 0).alive():
            return True
        time.sleep(0.05)
    return False


def _stop(paths: WorkerPaths, state: WorkerState, say: Callable[[str], None]) -> None:
    """Stop ``state``'s worker: ask it (it finishes a running notebook first), then SIGTERM,
    then SIGKILL; remove its files."""
    if state.alive():
        reply = _request(paths, state, {"op": "stop"})
        if reply is not None and reply[1].get("busy"):
            say(f"research worker {state.pid} is finishing {reply[1]['busy']} before it stops\n")
        if reply is None or not _wait_gone(state.pid, BUSY_STOP_SECONDS):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGTERM)
            if not _wait_gone(state.pid, STOP_SECONDS):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state.pid, signal.SIGKILL)
                _wait_gone(state.pid, STOP_SECONDS)
    for path in (paths.state, Path(state.socket)):
        path.unlink(missing_ok=True)


def _start(paths: WorkerPaths, settings: Settings, say: Callable[[str], None]) -> WorkerState:
    """Start a worker detached from this process (its own session, in the current directory
    and environment); return its state once it listens."""
    _new_key(paths)
    paths.state.unlink(missing_ok=True)
    say(
        "starting the research worker "
        f"(kept for {settings.research_worker_idle_seconds:g} s idle)\n"
    )
    with open(paths.log, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prism.research.worker_server", str(paths.folder)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        state = WorkerState.read(paths)
        if state is not None and state.pid == process.pid:
            return state
        if process.poll() is not None:
            tail = paths.log.read_text(errors="replace").splitlines()[-5:]
            raise ConfigError(
                f"the research worker exited at start (code {process.returncode}): "
                f"{' | '.join(tail)}; see {paths.log}, or run with --no-worker"
            )
        time.sleep(0.05)
    process.kill()
    raise ConfigError(
        f"the research worker did not start within {START_SECONDS:g} s; see {paths.log}, "
        "or run with --no-worker"
    )


def connect_worker(
    settings: Settings, wanted: str, say: Callable[[str], None]
) -> tuple[Connection, int]:
    """Return a connection to this workspace's worker and its pid, starting one when there is
    none, it died, it does not answer, or its fingerprint is not ``wanted`` (this process's)."""
    paths = worker_paths(settings)
    with _locked(paths):
        state = WorkerState.read(paths)
        if state is not None and state.alive():
            if state.fingerprint == wanted:
                connection = _connect(paths, state)
                if connection is not None:
                    return connection, state.pid
                say(f"research worker {state.pid} does not answer; replacing it\n")
            else:
                say(
                    f"research worker {state.pid} is stale (code or settings changed); "
                    "restarting it\n"
                )
            _stop(paths, state, say)
        elif state is not None:
            _stop(paths, state, say)
        state = _start(paths, settings, say)
        connection = _connect(paths, state)
        if connection is None:
            raise ConfigError(
                f"the research worker started but refuses connections; see {paths.log}"
            )
        return connection, state.pid


ERROR_TYPES: dict[str, type[PrismError]] = {
    **{
        name: kind
        for name, kind in vars(prism_errors).items()
        if isinstance(kind, type) and issubclass(kind, PrismError)
    },
    "NotebookFailed": NotebookFailed,
}
"""The errors a worker reports by name and its client raises again."""


class WorkerCrashed(PrismError):
    """The worker raised something that is not a Prism error, or died mid-run."""


@dataclass
class WorkerRun:
    """What a client learnt while its notebook ran in the worker."""

    pid: int
    run_id: str | None = None


def run_in_worker(
    settings: Settings,
    notebook: Path,
    raw_parameters: dict[str, str],
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    on_start: Callable[[WorkerRun], None] | None = None,
) -> ResearchRun:
    """Run ``notebook`` in this workspace's worker (see the module's docstring); return the run
    as :func:`~prism.research.notebooks.run_notebook` would, or raise its error. ``say``
    receives what the worker prints (progress, notices); ``on_start`` is told the run's id.

    Ctrl-C asks the worker to interrupt the notebook and waits for the run to be marked FAILED
    (a second Ctrl-C stops waiting; the worker still interrupts it)."""
    echo = say or (lambda text: None)
    require_notebook(notebook.resolve())
    wanted = fingerprint(settings)
    request = {
        "op": "run",
        "fingerprint": wanted,
        "notebook": str(notebook.resolve()),
        "parameters": dict(raw_parameters),
        "progress": progress,
    }
    for _ in range(3):
        connection, pid = connect_worker(settings, wanted, echo)
        seen = WorkerRun(pid)
        with connection:
            connection.send(request)
            try:
                return _follow(settings, connection, seen, echo, on_start)
            except _Closing:
                echo(f"research worker {pid} was exiting (idle); starting another\n")
                _wait_gone(pid, STOP_SECONDS)
            except KeyboardInterrupt:
                echo("\ninterrupted: the research worker is stopping the notebook …\n")
                with contextlib.suppress(OSError):
                    connection.send({"op": "cancel"})
                return _follow(settings, connection, seen, echo, None)
    raise WorkerCrashed("the research worker kept exiting as runs arrived; run with --no-worker")


class _Closing(Exception):
    """The worker was exiting when the run arrived; the client starts another."""


def _follow(
    settings: Settings,
    connection: Connection,
    seen: WorkerRun,
    echo: Callable[[str], None],
    on_start: Callable[[WorkerRun], None] | None,
) -> ResearchRun:
    while True:
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            left = _fail_orphan(settings, seen.run_id) if seen.run_id else ""
            raise WorkerCrashed(
                f"the research worker (pid {seen.pid}) died during the run{left}; the next run "
                "starts a new one"
            ) from None
        if kind == "output":
            echo(payload)
        elif kind == "started":
            seen.run_id = payload
            if on_start is not None:
                on_start(seen)
        elif kind == "result":
            return ResearchRun(
                payload["run_id"],
                Path(payload["executed"]),
                payload["metrics"],
                payload["stored_bytes"],
            )
        elif kind == "error":
            raise ERROR_TYPES.get(payload["type"], PrismError)(payload["message"])
        elif kind == "crash":
            raise WorkerCrashed(f"the research worker failed:\n{payload}")
        elif kind == "closing":
            raise _Closing
        elif kind == "stale":
            raise ConfigError(
                "the research worker changed while connecting (code or settings edited); run again"
            )


def _fail_orphan(settings: Settings, run_id: str) -> str:
    """Mark the run a dead worker left open as FAILED; return what to add to the message."""
    from prism.research.mlflow_store import mlflow_client

    try:
        client = mlflow_client(settings)
        if client.get_run(run_id).info.status != "RUNNING":
            return f"; MLflow run {run_id} was already closed"
        client.set_terminated(run_id, status="FAILED")
    except Exception as err:  # the store may be what failed; say so rather than mask the crash
        return f"; MLflow run {run_id} may be left RUNNING ({err})"
    return f"; MLflow run {run_id} marked FAILED"


def worker_status(settings: Settings) -> dict[str, Any] | None:
    """Return the running worker's status (pid, fingerprint and whether it is current, busy
    notebook, runs, idle seconds), or None when none runs."""
    paths = worker_paths(settings)
    state = WorkerState.read(paths)
    if state is None or not state.alive():
        return None
    reply = _request(paths, state, {"op": "status"})
    status = dict(reply[1]) if reply is not None else {"answering": False}
    status.update(
        pid=state.pid,
        fingerprint=state.fingerprint,
        current=state.fingerprint == fingerprint(settings),
        log=str(paths.log),
    )
    return status


def stop_worker(settings: Settings, say: Callable[[str], None] | None = None) -> int | None:
    """Stop this workspace's worker; return its pid, or None when none ran."""
    paths = worker_paths(settings)
    if not paths.folder.exists():
        return None
    with _locked(paths):
        state = WorkerState.read(paths)
        if state is None:
            return None
        running = state.alive()
        _stop(paths, state, say or (lambda text: None))
        return state.pid if running else None
