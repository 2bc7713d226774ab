"""Shared fixtures: a real PostgreSQL (embedded in a temporary workspace, or
``PRISM_TEST_DATABASE_URL``), a real MLflow store in a temporary folder, and settings for both.

The embedded server runs TimescaleDB when ``make install`` built it (the default), so the
database is in TimescaleDB mode; ``PRISM_TIMESCALEDB=off`` runs the same tests in plain
PostgreSQL mode (``make test`` does both). Tests marked ``timescaledb`` need TimescaleDB mode
(the PostgreSQL pass deselects them); they fail, rather than skip, if the server lacks it while
``make install`` reports it built.

The environment is pointed at the temporary workspace before any test runs, so no test touches
the checkout's own ``.prism/`` or ``mlruns/``; ``prism research run`` runs in-process
(``PRISM_RESEARCH_WORKER=false``) unless a test asks for the resident worker, so none is left
behind.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from prism.core.settings import Settings

PRISM_SCHEMAS = ("market_data", "features", "trading", "models", "config", "audit")
"""Every schema whose tables a test may fill; each test starts with all of them empty."""
KEPT_TABLES = ("config.database_info",)
"""Written once by the migrations (the database's mode), so never emptied (but its other keys,
such as retention cutoffs, are deleted)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "timescaledb: needs the database in TimescaleDB mode")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary PRISM_HOME and MLflow store for the whole session."""
    root = tmp_path_factory.mktemp("prism")
    saved = {
        k: os.environ.get(k)
        for k in (
            "PRISM_HOME",
            "PRISM_MLRUNS_DIR",
            "PRISM_DATABASE_URL",
            "MLFLOW_TRACKING_URI",
            "PRISM_RESEARCH_WORKER",
        )
    }
    os.environ["PRISM_HOME"] = str(root / "home")
    os.environ["PRISM_RESEARCH_WORKER"] = "false"
    os.environ["PRISM_MLRUNS_DIR"] = str(root / "mlruns")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("PRISM_DATABASE_URL", None)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def database_url(workspace: Path) -> Iterator[str]:
    """A libpq URL of an empty database on a real PostgreSQL server."""
    external = os.environ.get("PRISM_TEST_DATABASE_URL")
    if external:
        name = f"prism_test_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(external, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(external).set(database=name).render_as_string(hide_password=False)
        yield url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(external, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        return
    from prism.db import embedded

    pgdata = workspace / "home" / "postgres"
    url = embedded.start(pgdata)
    yield url
    embedded.stop(pgdata)


@pytest.fixture(scope="session")
def settings(workspace: Path, database_url: str) -> Settings:
    """Settings pointing at the test database and the temporary MLflow store."""
    os.environ["PRISM_DATABASE_URL"] = database_url
    return Settings()


@pytest.fixture(scope="session")
def migrated_engine(settings: Settings) -> Engine:
    """An engine on the test database with the schema at the newest revision."""
    from prism.db.engine import open_database

    return open_database(settings)


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    """The migrated engine, with every Prism table emptied before the test."""
    empty_tables(migrated_engine)
    return migrated_engine


@pytest.fixture
def timescale_engine(engine: Engine) -> Engine:
    """The emptied engine, which must be in TimescaleDB mode."""
    from prism.db.migrate import database_mode
    from prism.db.timescale_build import read_status

    if database_mode(engine) != "timescaledb":
        status = read_status()
        if not status.installed:
            pytest.skip(f"TimescaleDB is not built into the embedded server: {status.reason}")
        pytest.fail(
            "TimescaleDB is built into the embedded server but the test database is in "
            "PostgreSQL mode (PRISM_TIMESCALEDB=off? run this test in the TimescaleDB pass)"
        )
    return engine


def empty_tables(engine: Engine) -> None:
    """Empty every Prism table but KEPT_TABLES (read from the catalog, so a new migration's
    tables are emptied too), and on TimescaleDB the continuous aggregates' materialized rows,
    which live in TimescaleDB's internal schema (else one test's buckets leak into the next).

    On TimescaleDB the background jobs the migrations installed are paused first: a retention
    or compression job firing mid-test would change the test's bars under it (tests that check
    a job run it with ``CALL run_job``). A job already running can deadlock with the TRUNCATE,
    which is then retried.
    """
    for attempt in range(5):
        try:
            _empty_tables_once(engine)
            return
        except OperationalError as err:
            if "deadlock" not in str(err) or attempt == 4:
                raise
            time.sleep(0.5)


def _pause_jobs(engine: Engine) -> bool:
    """Unschedule Prism's TimescaleDB jobs and wait until none runs; return whether the
    database is on TimescaleDB."""
    with engine.begin() as conn:
        if not conn.execute(
            text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        ).scalar():
            return False
        paused = conn.execute(
            text(
                "SELECT count(*) FROM timescaledb_information.jobs j, "
                "LATERAL alter_job(j.job_id, scheduled => false) "
                "WHERE j.job_id >= 1000 AND j.scheduled"
            )
        ).scalar_one()
    deadline = time.monotonic() + 60
    while paused and time.monotonic() < deadline:
        with engine.connect() as conn:
            running = conn.execute(
                text(
                    "SELECT count(*) FROM timescaledb_information.job_stats "
                    "WHERE job_status = 'Running'"
                )
            ).scalar_one()
        if not running:
            break
        time.sleep(0.2)
    return True


def _empty_tables_once(engine: Engine) -> None:
    timescale = _pause_jobs(engine)
    with engine.begin() as conn:
        views: list[str] = []
        if timescale:
            views = list(
                conn.execute(
                    text(
                        "SELECT quote_ident(view_schema) || '.' || quote_ident(view_name) "
                        "FROM timescaledb_information.continuous_aggregates"
                    )
                ).scalars()
            )
        tables = list(
            conn.execute(
                text(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables"
                    " WHERE schemaname = ANY(:schemas)"
                    " AND schemaname || '.' || tablename <> ALL(:kept)"
                ),
                {"schemas": list(PRISM_SCHEMAS), "kept": list(KEPT_TABLES)},
            ).scalars()
        )
        for view in views:
            conn.execute(text(f"TRUNCATE {view}"))
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(text("DELETE FROM config.database_info WHERE key <> 'mode'"))


@pytest.fixture(scope="session")
def bundled_bars():  # type: ignore[no-untyped-def]
    """The real SPX and NDX daily bars shipped with ``arch``, as a bar frame."""
    from prism.data.sources import ArchBarSource

    return ArchBarSource().fetch()
