"""Engines: one function turns settings into a connected SQLAlchemy engine.

With ``PRISM_DATABASE_URL`` unset, the embedded server is started (or joined) first. A URL that
cannot be reached raises :class:`~prism.core.errors.ConfigError` naming the URL (password masked)
and the fix, instead of a driver traceback.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from prism.core.errors import ConfigError
from prism.core.settings import Settings, mask_url
from prism.db import embedded
from prism.db.roles import can_log_in, ensure_logins, runner_login, runner_url


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver, the only one Prism installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername != "postgresql+psycopg":
        raise ConfigError(
            f"PRISM_DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r} "
            f"({mask_url(url)}); use postgresql://user:password@host:5432/dbname"
        )
    return parsed.render_as_string(hide_password=False)


def database_url(settings: Settings) -> str:
    """Return the libpq URL of the configured database, starting the embedded one if needed."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded.start(settings.pgdata, timescaledb=settings.timescaledb != "off")


def connect(settings: Settings) -> Engine:
    """Return an engine for the configured database, checked with one round trip."""
    url = database_url(settings)
    engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise ConfigError(
            f"cannot connect to the database at {mask_url(url)}: {reason}. "
            "Check PRISM_DATABASE_URL, or unset it to use the embedded PostgreSQL server."
        ) from err
    return engine


def open_database(settings: Settings) -> Engine:
    """Return a connected engine whose schema is at the newest migration."""
    # Imported here: Alembic (behind migrate) is needed only when the schema is upgraded.
    from prism.db.migrate import upgrade

    engine = connect(settings)
    upgrade(engine)
    ensure_logins(engine, settings)
    return engine


def open_runner_database(settings: Settings) -> Engine:
    """Return an engine logged in as the runner's role (``prism_runner``: the writes of a trade
    cycle only), after migrating as the owner; the owner's engine when the role could not be set
    up (an owner without CREATEROLE on a managed server) or ``PRISM_RUNNER_ROLE`` is empty."""
    owner = open_database(settings)
    if not can_log_in(owner, runner_login(settings).role):
        return owner
    owner.dispose()
    return create_engine(
        sqlalchemy_url(runner_url(settings, database_url(settings))), pool_pre_ping=True
    )
