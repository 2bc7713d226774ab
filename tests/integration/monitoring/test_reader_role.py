"""The dashboard's read-only login is a boundary: on a fresh embedded server in its own
workspace, the schema is migrated by the CLI side, ``prism_reader`` gets a generated password,
and the dashboard's connection can neither write to any schema nor become anyone else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.db import embedded
from prism.db.engine import open_database
from prism.db.roles import password_file
from prism.monitoring import access

SCHEMAS = ("market_data", "features", "trading", "models", "config", "audit", "public")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings on a fresh workspace whose embedded server is not started yet."""
    for name in ("PRISM_DATABASE_URL", "PRISM_READER_PASSWORD", "PRISM_DASHBOARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PRISM_HOME", str(tmp_path / "home"))
    yield Settings(home=tmp_path / "home", database_url=None)
    embedded.stop(tmp_path / "home" / "postgres")


@pytest.fixture
def reader(workspace: Settings) -> Iterator[Engine]:
    """The dashboard's engine, after the CLI side migrated the workspace's database."""
    open_database(workspace).dispose()
    engine = access.reader_engine(workspace)
    yield engine
    engine.dispose()


def _refused(engine: Engine, sql: str) -> str | None:
    """Return the error ``sql`` raised on the engine's connection (None: it ran)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        raw.commit()
        return None
    except psycopg.Error as err:
        raw.rollback()
        return type(err).__name__
    finally:
        raw.close()


def test_the_dashboard_logs_in_as_the_reader_with_a_generated_workspace_password(workspace, reader):
    secret = password_file(workspace)

    assert access.reading_as(reader) == "prism_reader"
    assert reader.url.username == "prism_reader" and reader.url.password
    assert secret.read_text() == reader.url.password
    assert secret.stat().st_mode & 0o777 == 0o600


def test_the_reader_login_needs_its_password_on_the_embedded_server(workspace, reader):
    wrong = make_url(reader.url.render_as_string(hide_password=False)).set(password="guess")
    url = wrong.set(drivername="postgresql").render_as_string(hide_password=False)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url).close()


def test_the_reader_cannot_write_to_any_schema_or_escalate(reader):
    with reader.connect() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
                    "FROM pg_tables WHERE schemaname = ANY(:s)"
                ),
                {"s": list(SCHEMAS)},
            )
            .scalars()
            .all()
        )
    attempts = [
        "RESET ROLE; UPDATE config.strategies SET halted = false",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "RESET SESSION AUTHORIZATION; DELETE FROM audit.system_events",
        "ALTER ROLE prism_reader SUPERUSER",
        "GRANT pg_read_server_files TO prism_reader",
        "SET ROLE pg_read_server_files",
        "SELECT pg_read_file('PG_VERSION')",
        "COPY audit.system_events (message) FROM '/etc/hostname'",
        "CREATE ROLE intruder LOGIN SUPERUSER",
        *(f"CREATE TABLE {schema}.intruder (i int)" for schema in SCHEMAS),
        *(f"DELETE FROM {table}" for table in tables),
    ]

    allowed = [sql for sql in attempts if _refused(reader, sql) is None]

    assert len(tables) > 20
    assert allowed == []
    assert _refused(reader, "RESET ROLE") is None and access.reading_as(reader) == "prism_reader"


def test_the_dashboard_never_migrates_a_database(workspace):
    url = embedded.start(workspace.pgdata)

    with pytest.raises(ConfigError, match="prism db upgrade"):
        access.reader_engine(workspace)

    with psycopg.connect(url) as conn:
        migrated = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
    assert migrated == (None,)
