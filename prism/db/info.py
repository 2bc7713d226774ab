"""What ``prism db info`` reports: the database's mode, schema revision, hypertables, rollups,
compression and retention policies, and how many rows the main tables hold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from prism.core.settings import Settings
from prism.db.bars import CHUNK_INTERVALS, bars_storage, bars_table
from prism.db.migrate import current_revision, database_mode, timescale_support
from prism.db.rollups import ROLLUPS, SOURCES, configured_policies

COUNTED_TABLES = (
    "market_data.assets",
    *(bars_table(timeframe) for timeframe in CHUNK_INTERVALS),
    "market_data.indicators",
    "market_data.quarantine",
    "market_data.ohlcv_1h",
    "market_data.ohlcv_1d",
    "trading.orders",
    "trading.fills",
    "trading.positions",
    "trading.signals",
    "trading.portfolio_snapshots",
    "trading.risk_snapshots",
    "models.versions",
    "config.strategies",
    "audit.decisions",
    "audit.system_events",
)


@dataclass
class DatabaseInfo:
    """The answer of ``prism db info``.

    ``policies`` lists the configured policy per timeframe; on TimescaleDB ``jobs`` lists the
    background jobs actually installed (refresh, compression, retention).
    """

    mode: str
    revision: str | None
    server: str
    """What the database runs on, e.g. ``TimescaleDB 2.29.2 on PostgreSQL 18.6``, or in plain
    PostgreSQL mode why TimescaleDB is not used."""
    hypertables: list[str]
    rollups: list[dict[str, str]]
    policies: list[dict[str, Any]]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return asdict(self)


def _postgres_version(conn: Connection) -> str:
    return str(conn.execute(text("SHOW server_version")).scalar()).split()[0]


def why_not_timescaledb(conn: Connection, settings: Settings) -> str:
    """Return why a database in PostgreSQL mode does not use TimescaleDB (one line)."""
    if settings.timescaledb == "off":
        return "PRISM_TIMESCALEDB=off"
    support = timescale_support(conn)
    if support.available and support.preloaded:
        return (
            "this database was created in PostgreSQL mode before TimescaleDB was available, "
            "and the mode is fixed when the schema is created (a new database or workspace "
            "gets TimescaleDB)"
        )
    if support.available:
        return "TimescaleDB is installed on the server but not in shared_preload_libraries"
    if settings.database_url is None:
        from prism.db.timescale_build import read_status

        return read_status().reason or "TimescaleDB is not built into the embedded server"
    return "the server has no TimescaleDB extension"


def server_description(conn: Connection, mode: str, settings: Settings) -> str:
    """Return e.g. ``TimescaleDB 2.29.2 on PostgreSQL 18.6``, or ``PostgreSQL 18.6 (plain
    PostgreSQL mode: <why>)``."""
    postgres = _postgres_version(conn)
    if mode == "timescaledb":
        version = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        ).scalar()
        return f"TimescaleDB {version} on PostgreSQL {postgres}"
    return f"PostgreSQL {postgres} (plain PostgreSQL mode: {why_not_timescaledb(conn, settings)})"


def describe_server(engine: Engine, settings: Settings) -> str:
    """Return :func:`server_description` of ``engine``'s database."""
    mode = database_mode(engine)
    with engine.connect() as conn:
        return server_description(conn, mode, settings)


def _hypertables(conn: Connection) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT hypertable_schema || '.' || hypertable_name "
            "FROM timescaledb_information.hypertables ORDER BY 1"
        )
    )
    return [str(r[0]) for r in rows]


def _rollups(conn: Connection, mode: str) -> list[dict[str, str]]:
    if mode == "timescaledb":
        query = (
            "SELECT view_schema || '.' || view_name FROM timescaledb_information."
            "continuous_aggregates WHERE view_schema = 'market_data' ORDER BY 1"
        )
        kind = "continuous aggregate"
    else:
        query = (
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = "
            "'market_data' AND tablename IN ('ohlcv_1h', 'ohlcv_1d') ORDER BY 1"
        )
        kind = "table kept by ingestion"
    names = [str(r[0]) for r in conn.execute(text(query))]
    return [{"name": n, "kind": kind, "source": SOURCES.get(n, ("",))[0]} for n in names]


def _jobs(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT job_id, proc_name, coalesce(hypertable_schema || '.' || hypertable_name, '') "
            "AS target, CAST(schedule_interval AS text) AS schedule, scheduled, "
            "CAST(config AS text) AS config "
            "FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY job_id"
        )
    )
    return [dict(r._mapping) for r in rows]


def _row_counts(conn: Connection) -> dict[str, int]:
    present = {
        str(r[0])
        for r in conn.execute(
            text(
                "SELECT schemaname || '.' || relname FROM pg_stat_user_tables "
                "UNION SELECT schemaname || '.' || matviewname FROM pg_matviews "
                "UNION SELECT schemaname || '.' || viewname FROM pg_views"
            )
        )
    }
    return {
        table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in COUNTED_TABLES
        if table in present or table in ROLLUPS
    }


def _policies(settings: Settings, mode: str) -> list[dict[str, Any]]:
    how = "TimescaleDB jobs" if mode == "timescaledb" else "DELETE by `prism db retention`"
    return [
        {
            "timeframe": p.timeframe,
            "table": bars_storage(p.timeframe),
            "chunk_interval": CHUNK_INTERVALS[p.timeframe] if mode == "timescaledb" else None,
            "compress_after": p.compress_after if mode == "timescaledb" else None,
            "keep": p.keep or "forever",
            "applied_by": how,
        }
        for p in configured_policies(settings)
    ]


def describe(engine: Engine, settings: Settings) -> DatabaseInfo:
    """Return the database's mode, revision, hypertables, rollups, policies and row counts."""
    mode = database_mode(engine)
    revision = current_revision(engine)
    with engine.connect() as conn:
        timescale = mode == "timescaledb"
        return DatabaseInfo(
            mode=mode,
            revision=revision,
            server=server_description(conn, mode, settings),
            hypertables=_hypertables(conn) if timescale else [],
            rollups=_rollups(conn, mode),
            policies=_policies(settings, mode),
            jobs=_jobs(conn) if timescale else [],
            row_counts=_row_counts(conn),
        )
