"""``prism db``: the embedded server (start, stop, status, url), migrations, info, rollups and
retention.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from prism.cli.common import console, folding_table
from prism.core.settings import load_settings, mask_url

if TYPE_CHECKING:
    pass


db_app = typer.Typer(
    help="The PostgreSQL database (embedded unless PRISM_DATABASE_URL is set).",
    no_args_is_help=True,
)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL server (it keeps running until `prism db stop`)."""
    from prism.db import embedded

    settings = load_settings()
    if settings.database_url is not None:
        console.print(
            f"PRISM_DATABASE_URL is set ({mask_url(settings.database_url.get_secret_value())});"
            " nothing to start"
        )
        return
    console.print(f"embedded PostgreSQL running: {embedded.start(settings.pgdata)}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (also after a crashed process left it running)."""
    from prism.db import embedded

    stopped = embedded.stop(load_settings().pgdata)
    console.print("stopped" if stopped else "the embedded server was not running")


@db_app.command("status")
def db_status() -> None:
    """Say whether the database is up, and where."""
    from prism.db import embedded

    settings = load_settings()
    if settings.database_url is not None:
        from prism.db.engine import connect

        connect(settings)
        console.print(
            f"external database reachable: {mask_url(settings.database_url.get_secret_value())}"
        )
        return
    state = embedded.status(settings.pgdata)
    if state.running:
        console.print(
            f"embedded PostgreSQL running (pid {state.pid}, data {state.pgdata}, "
            f"socket {state.socket_dir})"
        )
    else:
        console.print(
            f"embedded PostgreSQL not running (data {state.pgdata}); `prism db start` starts it"
        )


@db_app.command("url")
def db_url(
    sqlalchemy: Annotated[
        bool, typer.Option("--sqlalchemy", help="print the SQLAlchemy form (postgresql+psycopg://)")
    ] = False,
) -> None:
    """Print the database URL (starting the embedded server if needed); psql accepts it."""
    from prism.db.engine import database_url, sqlalchemy_url

    url = database_url(load_settings())
    print(sqlalchemy_url(url) if sqlalchemy else url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to the newest revision, and give Prism's logins
    (the dashboard's prism_reader, the runner's prism_runner) their passwords."""
    from prism.db.engine import connect
    from prism.db.migrate import database_mode, upgrade
    from prism.db.roles import ensure_logins

    settings = load_settings()
    engine = connect(settings)
    revision = upgrade(engine)
    logins = ensure_logins(engine, settings)
    console.print(f"schema at revision {revision} ({database_mode(engine)} mode)")
    if not logins.get(settings.dashboard_role):
        console.print(
            f"the read-only login {settings.dashboard_role or '(none)'} was not set up: this "
            "user may not alter roles; the dashboard needs PRISM_DASHBOARD_DATABASE_URL"
        )
    if not logins.get(settings.runner_role):
        console.print(
            f"the runner's login {settings.runner_role or '(none)'} was not set up: the "
            "runner will trade as this user"
        )


@db_app.command("info")
def db_info(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Show the database's mode, revision, hypertables, rollups, policies and row counts."""
    from prism.db.engine import open_database
    from prism.db.info import describe

    settings = load_settings()
    info = describe(open_database(settings), settings)
    if as_json:
        print(json.dumps(info.as_dict(), indent=2, default=str))
        return
    console.print(f"mode: {info.mode}, schema revision {info.revision}")
    console.print(f"server: {info.server}")
    console.print(f"hypertables: {', '.join(info.hypertables) or '(none: plain PostgreSQL)'}")
    for rollup in info.rollups:
        console.print(f"rollup: {rollup['name']} ({rollup['kind']} of {rollup['source']})")
    policies = folding_table("timeframe", "table", "chunks", "compress after", "keep", "applied by")
    for p in info.policies:
        policies.add_row(
            p["timeframe"],
            p["table"],
            p["chunk_interval"] or "-",
            p["compress_after"] or "-",
            p["keep"],
            p["applied_by"],
        )
    console.print(policies)
    if info.jobs:
        jobs = folding_table("job", "procedure", "target", "every", "scheduled", "config")
        for job in info.jobs:
            jobs.add_row(
                str(job["job_id"]),
                job["proc_name"],
                job["target"] or "-",
                job["schedule"],
                "yes" if job["scheduled"] else "paused",
                job["config"] or "",
            )
        console.print(jobs)
    counts = folding_table("table", "rows")
    for table, rows in info.row_counts.items():
        counts.add_row(table, f"{rows:,}")
    console.print(counts)


@db_app.command("refresh")
def db_refresh() -> None:
    """Refresh the 1h and 1d rollups of the 1m bars now."""
    from prism.db.engine import open_database
    from prism.db.rollups import refresh_rollups

    refresh_rollups(open_database(load_settings()))
    console.print("rollups market_data.ohlcv_1h and market_data.ohlcv_1d refreshed")


@db_app.command("retention")
def db_retention() -> None:
    """Apply PRISM_COMPRESS_* and PRISM_RETENTION_*: TimescaleDB jobs, or (plain PostgreSQL)
    delete the bars older than their timeframe's retention now and refresh the rollups."""
    from prism.db.engine import open_database
    from prism.db.rollups import apply_policies, apply_retention, refresh_rollups

    settings = load_settings()
    engine = open_database(settings)
    installed = apply_policies(engine, settings)
    for line in installed:
        console.print(line)
    if not installed:
        deleted = apply_retention(engine, settings)
        refresh_rollups(engine)
        summary = ", ".join(f"{tf}: {n:,}" for tf, n in deleted.items()) or "nothing to do"
        console.print(f"bars deleted by retention: {summary}")
