"""Who the dashboard reads as, and whether a visitor may see it.

The dashboard never writes and never migrates. It connects with its own read-only login:
``PRISM_DASHBOARD_DATABASE_URL`` when set, else the main database's server logged in as
``PRISM_DASHBOARD_ROLE`` (``prism_reader``, created by migration 0008) with its password
(:mod:`prism.db.roles`). It never holds the owner's credentials, so neither ``RESET ROLE`` nor
``SET ROLE`` can give it more than ``SELECT``. A database that was never migrated (no role, no
password yet) is refused with the command that fixes it.

Login: ``PRISM_DASHBOARD_AUTH`` is ``none`` (the local demo), ``password`` (compared with
``PRISM_DASHBOARD_PASSWORD`` in constant time) or ``oidc`` (Streamlit's ``st.login`` with the
``[auth]`` section of ``.streamlit/secrets.toml``, checked by :func:`check_oidc` before the
first visitor sees a login button that could only fail).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, text

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.db.engine import connect, database_url
from prism.db.roles import reader_url

AUTH_MODES = ("none", "password", "oidc")
OIDC_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
"""What ``st.login()`` (the default provider) needs in the ``[auth]`` section of the secrets."""


def reader_engine(settings: Settings) -> Engine:
    """Return the engine the dashboard reads through (see the module docstring), checked to
    run its queries as the reader role."""
    if settings.dashboard_database_url is not None:
        url = settings.dashboard_database_url.get_secret_value()
    else:
        url = reader_url(settings, database_url(settings))
    engine = connect(settings.model_copy(update={"database_url": SecretStr(url)}))
    role = reading_as(engine)
    if settings.dashboard_database_url is None and role != settings.dashboard_role:
        engine.dispose()
        raise ConfigError(
            f"the dashboard's login reads as {role!r}, not {settings.dashboard_role!r}; "
            "check PRISM_DASHBOARD_ROLE"
        )
    return engine


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
