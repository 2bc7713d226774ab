"""The resident research worker's process (``python -m prism.research.worker_server FOLDER``,
started by :mod:`prism.research.worker`): it runs queued notebooks one at a time on one warm
kernel in its main thread, answers status and stop requests from connection threads, forwards
papermill's output to the waiting client, and exits when idle too long or stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from prism.core.errors import PrismError
from prism.core.settings import load_settings
from prism.research.worker import (
    PRELUDE,
    WorkerPaths,
    WorkerState,
    fingerprint,
    read_key,
)


class _Forward:
    """A text stream that sends what is written to a client as ``output`` messages (UTF-8, so
    papermill's progress bar draws as it does on a terminal)."""

    encoding = "utf-8"

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            self.connection.send(("output", text))
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        """The client decides how to show it."""
        return False


@dataclass
class _Job:
    connection: Connection
    request: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


class Worker:
    """The worker process: runs queued notebooks on one warm kernel in its main thread, answers
    status and stop requests from connection threads, and exits when idle too long."""

    def __init__(self, paths: WorkerPaths, stamp: str) -> None:
        self.paths = paths
        self.fingerprint = stamp
        self.settings = load_settings()
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.busy: str | None = None
        self.current: _Job | None = None
        self.runs = 0
        self.last = time.monotonic()
        self.started = time.time()
        self.kernel: Any = None
        self.gate = threading.Lock()
        self.closing = False
        self.state: WorkerState | None = None

    def status(self) -> dict[str, Any]:
        """Return what ``prism research worker status`` shows."""
        return {
            "answering": True,
            "busy": self.busy,
            "queued": self.jobs.qsize(),
            "runs": self.runs,
            "idle_seconds": 0.0 if self.busy else round(time.monotonic() - self.last, 1),
            "idle_limit": self.settings.research_worker_idle_seconds,
            "uptime_seconds": round(time.time() - self.started, 1),
        }

    def serve(self) -> None:
        """Listen, run jobs until idle too long or stopped, then clean up."""
        from prism.research import notebooks, tracking  # noqa: F401 - imported once, kept

        socket = self.paths.socket(os.getpid())
        socket.unlink(missing_ok=True)
        listener = Listener(str(socket), family="AF_UNIX", authkey=read_key(self.paths))
        os.chmod(socket, 0o600)
        self.state = WorkerState(os.getpid(), self.fingerprint, str(socket), self.started)
        written = self.paths.state.with_suffix(".tmp")
        written.write_text(json.dumps(dataclasses.asdict(self.state)))
        written.replace(self.paths.state)
        self.last = time.monotonic()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        try:
            self._loop()
        finally:
            self._withdraw()
            if self.kernel is not None:
                self.kernel.close()
            listener.close()

    def _withdraw(self) -> None:
        """Stop taking runs: a client that connects from now on is told to start another
        worker, and ``worker.json`` is removed (when it is still this worker's)."""
        with self.gate:
            self.closing = True
            if WorkerState.read(self.paths) == self.state:
                self.paths.state.unlink(missing_ok=True)

    def _loop(self) -> None:
        limit = self.settings.research_worker_idle_seconds
        while True:
            wait = limit - (time.monotonic() - self.last)
            try:
                job = self.jobs.get(timeout=max(wait, 0.01))
            except queue.Empty:
                if time.monotonic() - self.last < limit:
                    continue
                self._withdraw()
                if self.jobs.empty():
                    print(f"idle for {limit:g} s: exiting", flush=True)
                    return
                continue
            if job is None:
                return
            self._run(job)
            self.last = time.monotonic()
            if self.closing and self.jobs.empty():
                return

    def _accept(self, listener: Listener) -> None:
        while True:
            try:
                connection = listener.accept()
            except Exception:  # a client that fails the handshake is dropped
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: Connection) -> None:
        try:
            request = connection.recv()
            op = request.get("op")
            if op == "status":
                connection.send(("status", self.status()))
            elif op == "stop":
                connection.send(("stopping", {"busy": self.busy}))
                self._withdraw()
                self.jobs.put(None)
            elif op == "run":
                self._queue(connection, request)
        except (EOFError, OSError):
            pass
        finally:
            connection.close()

    def _queue(self, connection: Connection, request: dict[str, Any]) -> None:
        """Queue a run and watch its client: a ``cancel`` message, or the client going away,
        interrupts the notebook."""
        if request.get("fingerprint") != self.fingerprint:
            connection.send(("stale", None))
            return
        job = _Job(connection, request)
        with self.gate:
            if self.closing:
                connection.send(("closing", None))
                return
            if self.busy or not self.jobs.empty():
                connection.send(
                    ("output", f"research worker busy with {self.busy}; this run waits for it\n")
                )
            self.jobs.put(job)
        while not job.done.is_set():
            try:
                if not connection.poll(0.2):
                    continue
                connection.recv()
            except (EOFError, OSError):
                pass
            self._cancel(job)
            job.done.wait()

    def _cancel(self, job: _Job) -> None:
        job.cancelled = True
        if self.current is job and self.kernel is not None:
            pid = self.kernel.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)

    def _run(self, job: _Job) -> None:
        from prism.research.kernels import WarmKernel
        from prism.research.notebooks import run_notebook

        request = job.request
        notebook = Path(request["notebook"])
        connection = job.connection
        if job.cancelled:
            message = f"{notebook.name} was interrupted before it started; nothing ran"
            with contextlib.suppress(OSError, ValueError):
                connection.send(("error", {"type": "ConfigError", "message": message}))
            job.done.set()
            return
        self.busy = notebook.name
        self.current = job
        saved = sys.stderr
        try:
            if self.kernel is None or self.kernel.cwd != notebook.parent:
                if self.kernel is not None:
                    self.kernel.close()
                self.kernel = WarmKernel(notebook.parent, prelude=PRELUDE)
            sys.stderr = _Forward(connection)
            run = run_notebook(
                self.settings,
                notebook,
                request["parameters"],
                progress=request["progress"],
                kernel=self.kernel,
                on_start=lambda run_id: connection.send(("started", run_id)),
            )
            reply: tuple[str, Any] = (
                "result",
                {
                    "run_id": run.run_id,
                    "executed": str(run.executed),
                    "metrics": run.metrics,
                    "stored_bytes": run.stored_bytes,
                },
            )
        except PrismError as err:
            reply = ("error", {"type": type(err).__name__, "message": str(err)})
        except Exception:  # reported to the client; the worker goes on
            reply = ("crash", traceback.format_exc())
        finally:
            sys.stderr = saved
            self.busy = None
            self.current = None
            self.runs += 1
        with contextlib.suppress(OSError, ValueError):
            connection.send(reply)
        job.done.set()


def main(folder: str) -> None:
    """Entry point of ``python -m prism.research.worker_server FOLDER``: serve until idle or stopped
    (SIGTERM stops it cleanly too)."""
    stamp = fingerprint(load_settings())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"research worker {os.getpid()} starting (fingerprint {stamp})", flush=True)
    Worker(WorkerPaths(Path(folder)), stamp).serve()


if __name__ == "__main__":
    main(sys.argv[1])
