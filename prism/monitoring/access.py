"""Who the dashboard reads as, and whether a visitor may see it.

The dashboard never writes. With ``PRISM_DASHBOARD_DATABASE_URL`` set it connects with that
(read-only) login and runs no migration; otherwise it opens the main database (migrating it, as
every Prism process does) and every pooled connection runs ``SET ROLE prism_reader`` (the role
migration 0008 creates) so that SELECT is all it can do. When that role does not exist (the
migrating user could not create roles) it reads as the owner and :func:`reading_as` says so.

Login: ``PRISM_DASHBOARD_AUTH`` is ``none`` (the local demo), ``password`` (compared with
``PRISM_DASHBOARD_PASSWORD`` in constant time) or ``oidc`` (Streamlit's ``st.login`` with the
``[auth]`` section of ``.streamlit/secrets.toml``, checked by :func:`check_oidc` before the
first visitor sees a login button that could only fail).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.db.engine import connect, open_database

AUTH_MODES = ("none", "password", "oidc")
OIDC_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
"""What ``st.login()`` (the default provider) needs in the ``[auth]`` section of the secrets."""


def _role_usable(engine: Engine, role: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r) "
                    "AND pg_has_role(current_user, :r, 'MEMBER')"
                ),
                {"r": role},
            ).scalar()
        )


def _assume_role(engine: Engine, role: str) -> Engine:
    """Return a new engine on ``engine``'s URL whose connections all ``SET ROLE role``."""
    reader = create_engine(engine.url.render_as_string(hide_password=False), pool_pre_ping=True)
    quoted = role.replace('"', '""')

    @event.listens_for(reader, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{quoted}"')
        dbapi_connection.commit()

    return reader


def reader_engine(settings: Settings) -> Engine:
    """Return the engine the dashboard reads through (see the module docstring)."""
    if settings.dashboard_database_url is not None:
        url = settings.dashboard_database_url.get_secret_value()
        return connect(settings.model_copy(update={"database_url": url}))
    owner = open_database(settings)
    if not settings.dashboard_role or not _role_usable(owner, settings.dashboard_role):
        return owner
    owner.dispose()
    return _assume_role(owner, settings.dashboard_role)


def reading_as(engine: Engine) -> str:
    """Return the role the engine's queries run as (``current_user``)."""
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_user")).scalar())


def auth_mode(settings: Settings) -> str:
    """Return the configured login mode, or raise a ConfigError saying what to set."""
    mode = settings.dashboard_auth.strip().lower()
    if mode not in AUTH_MODES:
        raise ConfigError(
            f"PRISM_DASHBOARD_AUTH={settings.dashboard_auth!r} is not a login mode; "
            f"use one of {', '.join(AUTH_MODES)}"
        )
    if mode == "password" and not (
        settings.dashboard_password and settings.dashboard_password.get_secret_value()
    ):
        raise ConfigError(
            "PRISM_DASHBOARD_AUTH=password but PRISM_DASHBOARD_PASSWORD is empty; set a "
            "password (or PRISM_DASHBOARD_AUTH=none for a local dashboard)"
        )
    return mode


def password_matches(settings: Settings, attempt: str) -> bool:
    """Return whether ``attempt`` is the dashboard password (constant-time comparison)."""
    secret = settings.dashboard_password
    if secret is None:
        return False
    return hmac.compare_digest(attempt.encode(), secret.get_secret_value().encode())


def check_oidc(secrets: Mapping[str, Any]) -> None:
    """Raise a ConfigError naming every :data:`OIDC_KEYS` entry the ``[auth]`` section of
    ``secrets`` (Streamlit's ``st.secrets``) lacks, so a login that cannot work says why."""
    auth = secrets.get("auth")
    section = auth if isinstance(auth, Mapping) else {}
    missing = [key for key in OIDC_KEYS if not section.get(key)]
    if missing:
        raise ConfigError(
            "PRISM_DASHBOARD_AUTH=oidc needs "
            + ", ".join(f"auth.{k}" for k in missing)
            + " in .streamlit/secrets.toml (see Streamlit's st.login); or set "
            "PRISM_DASHBOARD_AUTH=password"
        )
