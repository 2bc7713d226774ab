"""``prism api`` as a real uvicorn process on a free loopback port, for the tests and the load
benchmark that talk to it over HTTP and WebSockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from prism.core.settings import Settings
from prism.db.roles import login_password, reader_login, runner_login


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api_env(settings: Settings, database_url: str, home: Path, signing: str) -> dict[str, str]:
    """Return the environment of a test's ``prism api``: the test's database and signing keys,
    a workspace and MLflow store of its own under ``home``, and the session's login passwords
    (a new workspace would otherwise give ``prism_reader`` and ``prism_runner`` new ones and
    lock the session's other connections out)."""
    return {
        "PRISM_DATABASE_URL": database_url,
        "PRISM_READER_PASSWORD": login_password(settings, reader_login(settings)) or "",
        "PRISM_RUNNER_PASSWORD": login_password(settings, runner_login(settings)) or "",
        "PRISM_API_SIGNING_KEYS": signing,
        "PRISM_HOME": str(home / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
    }


@contextmanager
def running_api(env: dict[str, str], startup_seconds: float = 180) -> Iterator[str]:
    """Start ``prism api`` with ``env`` added to this process's environment, wait until its
    ``/health`` answers, yield its base URL, then stop it (SIGTERM, uvicorn's graceful exit).
    Its logs go to a temporary file (a pipe nobody reads would fill and stall it under load)."""
    port = free_port()
    prism = Path(sys.executable).with_name("prism")
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed after the server stops)
    server = subprocess.Popen(
        [str(prism), "api", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"prism api exited: {log.read().decode()[-4000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prism api did not answer /health")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()
