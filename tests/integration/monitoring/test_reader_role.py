"""Migration 0008 on a server whose migrating user may not create roles: the schema still
migrates, no role is created, and the dashboard reads as the owner (and says so)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from prism.core.settings import Settings
from prism.db import embedded
from prism.db.engine import open_database
from prism.monitoring import access


@pytest.fixture
def unprivileged_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh server with a database owned by a login that lacks CREATEROLE."""
    pgdata = tmp_path / "postgres"
    admin = embedded.start(pgdata)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE owner_only LOGIN NOCREATEROLE NOSUPERUSER")
        conn.execute("CREATE DATABASE plain OWNER owner_only")
    yield admin.replace("postgresql://postgres@/prism", "postgresql://owner_only@/plain"), admin
    embedded.stop(pgdata)


def test_without_createrole_the_migration_skips_the_role_and_the_dashboard_reads_as_owner(
    unprivileged_url,
):
    url, admin = unprivileged_url
    settings = Settings(database_url=url, dashboard_role="prism_reader")

    engine = open_database(settings)
    reader = access.reader_engine(settings)

    with psycopg.connect(admin) as conn:
        roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'prism_reader'")
        assert roles.fetchone() == (0,)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() >= "0008"
    assert access.reading_as(reader) == "owner_only"
    reader.dispose()
    engine.dispose()
