"""Schema migrations through Alembic, run on a Prism engine, and the choice of database mode.

The mode (TimescaleDB or plain PostgreSQL) is chosen once, when the first migration creates the
schema (:func:`choose_mode`), and recorded in ``config.database_info``:

- ``PRISM_TIMESCALEDB=off``: PostgreSQL mode, whatever the server offers;
- the extension is available and the server preloads it: TimescaleDB mode;
- the extension is not available: PostgreSQL mode (``PRISM_TIMESCALEDB=on`` refuses instead);
- the extension is available but not preloaded (``CREATE EXTENSION`` would fail with a raw
  error): a :class:`~prism.core.errors.ConfigError` naming the setting to add, or
  ``PRISM_TIMESCALEDB=off`` to choose PostgreSQL mode knowingly.

A database already in TimescaleDB mode on a server that no longer preloads the library gets the
same one-line error from :func:`upgrade` instead of failing on its first hypertable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from prism.core.errors import ConfigError
from prism.core.settings import Settings, load_settings

NOT_PRELOADED = (
    "TimescaleDB is installed on this PostgreSQL server but not preloaded: add "
    "shared_preload_libraries = 'timescaledb' to the server's postgresql.conf and restart it "
    "(the embedded server does this itself), or set PRISM_TIMESCALEDB=off for plain "
    "PostgreSQL mode"
)
NOT_AVAILABLE = (
    "PRISM_TIMESCALEDB=on but this PostgreSQL server has no TimescaleDB extension: run "
    "`make install` (it builds TimescaleDB into the embedded server), use a TimescaleDB server, "
    "or set PRISM_TIMESCALEDB=auto"
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """Return the newest migration's revision id."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's revision, or ``None`` for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class TimescaleSupport:
    """What the server offers of TimescaleDB."""

    available: bool
    """The extension's files are installed (``pg_available_extensions``)."""
    preloaded: bool
    """``shared_preload_libraries`` names it, so ``CREATE EXTENSION`` can work (taken as true
    when the role may not read the setting)."""
    version: str | None
    """The version the server would install (or has installed in this database)."""


def timescale_support(conn: Connection) -> TimescaleSupport:
    """Return whether the server has TimescaleDB and preloads it."""
    row = conn.execute(
        text(
            "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions "
            "WHERE name = 'timescaledb'"
        )
    ).first()
    # pg_settings hides shared_preload_libraries from roles without pg_read_all_settings
    # (current_setting would raise): unknown then, and taken as preloaded.
    preload = conn.execute(
        text("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")
    ).scalar()
    return TimescaleSupport(
        available=row is not None,
        preloaded=preload is None or "timescaledb" in str(preload),
        version=str(row[0]) if row is not None else None,
    )


def choose_mode(conn: Connection, setting: str) -> str:
    """Return ``timescaledb`` or ``postgresql`` for a new database, given ``PRISM_TIMESCALEDB``.

    Raises a ConfigError (one line naming the fix) when TimescaleDB is required but missing, or
    installed but not preloaded.
    """
    if setting == "off":
        return "postgresql"
    support = timescale_support(conn)
    if not support.available:
        if setting == "on":
            raise ConfigError(NOT_AVAILABLE)
        return "postgresql"
    if not support.preloaded:
        raise ConfigError(NOT_PRELOADED)
    return "timescaledb"


def _recorded_mode(conn: Connection) -> str | None:
    if conn.execute(text("SELECT to_regclass('config.database_info')")).scalar() is None:
        return None
    value = conn.execute(text("SELECT value FROM config.database_info WHERE key = 'mode'")).scalar()
    return None if value is None else str(value)


def upgrade(engine: Engine, settings: Settings | None = None) -> str:
    """Bring the schema to the newest revision (a no-op when it is there); return it.

    A new database's mode follows ``settings.timescaledb`` (see :func:`choose_mode`); the
    migrations read ``settings`` (default: this process's) for the default compression and
    retention policies. A PostgreSQL advisory lock serialises concurrent callers, so two
    processes starting at once never run the same migration twice.
    """
    settings = settings or load_settings()
    config = _alembic_config()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(7072697371)"))
        if _recorded_mode(conn) == "timescaledb" and not timescale_support(conn).preloaded:
            raise ConfigError(NOT_PRELOADED)
        config.attributes["connection"] = conn
        config.attributes["settings"] = settings
        command.upgrade(config, "head")
    return head_revision()


def database_mode(engine: Engine) -> str:
    """Return ``timescaledb`` or ``postgresql``, as recorded when the schema was created."""
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT value FROM config.database_info WHERE key = 'mode'")).scalar()
        )
