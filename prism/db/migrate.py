"""Schema migrations through Alembic, run on a Prism engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

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


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision (a no-op when it is there); return it.

    A PostgreSQL advisory lock serialises concurrent callers, so two processes starting at once
    never run the same migration twice.
    """
    config = _alembic_config()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(7072697371)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return head_revision()


def database_mode(engine: Engine) -> str:
    """Return ``timescaledb`` or ``postgresql``, as recorded when the schema was created."""
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT value FROM config.database_info WHERE key = 'mode'")).scalar()
        )
