"""The runner's login is a boundary: ``prism_runner`` trades whole cycles (bars in, orders,
fills, snapshots, signals, decisions, a halt) and can do nothing the operator, the registry or
the schema's owner does: approve, loosen its limits, resume, lower its high-water mark, erase or
rewrite history, read the API's password and key hashes, change the schema, or become another
role."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.db.bars import CHUNK_INTERVALS, bars_storage
from prism.db.engine import open_runner_database
from prism.db.roles import password_file, runner_login
from prism.live import cycle, deployments
from prism.live.replay import replay_times
from tests.integration.runner_support import SYMBOLS, FixedSource, deploy, loosen_limits

SCHEMAS = ("market_data", "features", "trading", "models", "config", "audit")
INSERTS = {
    *(bars_storage(tf) for tf in CHUNK_INTERVALS),
    "market_data.ohlcv_1h",
    "market_data.ohlcv_1d",
    "market_data.quarantine",
    "market_data.assets",
    "market_data.indicators",
    "trading.orders",
    "trading.fills",
    "trading.positions",
    "trading.accounts",
    "trading.paper_orders",
    "trading.paper_fills",
    "trading.signals",
    "trading.portfolio_snapshots",
    "trading.risk_snapshots",
    "audit.decisions",
    "audit.system_events",
    "audit.alert_outbox",
}
"""What a trade cycle inserts (the 1h/1d rollups are tables only in plain-PostgreSQL mode)."""
HISTORY = {"trading.fills", "trading.paper_fills", "audit.decisions", "audit.system_events"}
"""Tables the runner appends to and never rewrites (an event's alert outcome aside)."""


@pytest.fixture
def runner(engine: Engine, settings) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """The runner flows' engine on the emptied test database."""
    runner_engine = open_runner_database(settings)
    yield runner_engine
    runner_engine.dispose()


def _refusal(engine: Engine, sql: str) -> str | None:
    """Return the SQLSTATE ``sql`` failed with on the engine's connection (None: it ran)."""
    raw = engine.raw_connection()
    try:
        raw.cursor().execute(sql)
        raw.commit()
        return None
    except psycopg.Error as err:
        raw.rollback()
        return err.sqlstate
    finally:
        raw.close()


def test_the_runner_logs_in_as_its_own_role_with_a_workspace_password(settings, runner):
    secret = password_file(settings, runner_login(settings))

    with runner.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "prism_runner"
    assert secret.read_text() == runner.url.password
    assert secret.stat().st_mode & 0o777 == 0o600
    wrong = make_url(runner.url.render_as_string(hide_password=False)).set(
        drivername="postgresql", password="guess"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.render_as_string(hide_password=False)).close()


def test_the_runner_trades_whole_cycles_under_its_own_login(engine, settings, runner):
    ingest(runner, ArchBarSource())
    deploy(engine, "alpha")
    loosen_limits(engine, "runner role test")

    reports = [
        cycle.run_cycle(runner, settings, "alpha", as_of=t, source=FixedSource())
        for t in replay_times(runner, list(SYMBOLS), 40)
    ]

    with engine.connect() as conn:
        counts = {
            table: conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE deployment = 'alpha'")
            ).scalar()
            for table in (
                "trading.orders",
                "trading.fills",
                "trading.signals",
                "trading.portfolio_snapshots",
                "trading.high_water_marks",
                "audit.decisions",
            )
        }
    assert len(reports) == 40 and all(r.outcome == "traded" for r in reports)
    assert counts["trading.fills"] > 0 and counts["trading.orders"] >= counts["trading.fills"]
    assert counts["trading.portfolio_snapshots"] == 40
    assert counts["trading.high_water_marks"] == 1
    assert counts["trading.signals"] > 0 and counts["audit.decisions"] > 0


def test_the_runner_may_halt_a_deployment_but_never_resume_one(engine, runner):
    deploy(engine, "alpha")

    with runner.begin() as conn:
        assert deployments.halt(conn, "alpha", "breaker tripped", "runner")
    with pytest.raises(ProgrammingError, match="permission denied"), runner.begin() as conn:
        deployments.resume(conn, "alpha", "runner")

    assert deployments.get_deployment(engine, "alpha").halted


def test_the_runner_cannot_approve_loosen_erase_rewrite_or_escalate(engine, runner):
    with engine.connect() as conn:
        tables = dict(
            conn.execute(
                text(
                    "SELECT c.table_schema || '.' || c.table_name, c.column_name "
                    "FROM information_schema.columns c JOIN pg_tables t "
                    "ON t.schemaname = c.table_schema AND t.tablename = c.table_name "
                    "WHERE c.table_schema = ANY(:s) AND c.ordinal_position = 1"
                ),
                {"s": list(SCHEMAS)},
            ).all()
        )
    attempts = [
        *(f"DELETE FROM {table}" for table in tables),
        *(f"TRUNCATE {table}" for table in tables),
        *(f"INSERT INTO {table} DEFAULT VALUES" for table in tables if table not in INSERTS),
        *(
            f"UPDATE {table} SET {column} = {column}"
            for table, column in tables.items()
            if table not in INSERTS or table in HISTORY
        ),
        "UPDATE config.strategies SET halted = false",
        "UPDATE config.strategies SET model_alias = 'challenger'",
        "UPDATE audit.system_events SET message = 'nothing happened'",
        "UPDATE public.alembic_version SET version_num = '0001'",
        *(f"CREATE TABLE {schema}.intruder (i int)" for schema in (*SCHEMAS, "public")),
        "DROP TABLE trading.orders",
        "ALTER TABLE trading.fills ADD COLUMN note text",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "ALTER ROLE prism_runner SUPERUSER",
        "CREATE ROLE intruder LOGIN SUPERUSER",
        "GRANT pg_read_server_files TO prism_runner",
        "SELECT pg_read_file('PG_VERSION')",
        "COPY audit.system_events (message) FROM '/etc/hostname'",
        "SELECT count(*) FROM config.api_users",
        "SELECT count(*) FROM config.api_keys",
        "SELECT count(*) FROM config.api_jobs",
    ]

    outcomes = {sql: _refusal(runner, sql) for sql in attempts}

    assert len(tables) > 20
    assert {sql: state for sql, state in outcomes.items() if state != "42501"} == {}
