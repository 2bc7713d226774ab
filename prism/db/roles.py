"""Prism's own logins: ``prism_reader`` (the dashboard) and ``prism_runner`` (the live runner).

Migration 0008 creates the reader role with ``SELECT`` on Prism's schemas; migration 0015 the
runner role with ``SELECT`` and the writes of a trade cycle only. After every migration the owner
side (:func:`ensure_logins`, called by :func:`prism.db.engine.open_database`) gives each role
``LOGIN`` with its password: the setting (``PRISM_READER_PASSWORD``, ``PRISM_RUNNER_PASSWORD``;
docker compose, a managed server) when set, else one generated once into the workspace
(``reader.password``, ``runner.password``; mode 0600). The embedded server asks these roles for
their password (``pg_hba.conf``, see :mod:`prism.db.embedded`). :func:`reader_url` and
:func:`runner_url` are the main database's URL logged in as the role: all the dashboard gets, and
what the runner's flows trade through. Neither role can migrate.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from prism.core.errors import ConfigError
from prism.core.settings import Settings

ROLE_LOCK = 0x70726F6C65
"""Advisory lock key held while a login's role is altered (one process at a time)."""


@dataclass(frozen=True)
class Login:
    """One of Prism's logins: its role, its password when a setting gives one, the workspace
    file a generated password is kept in, and the environment variable of that setting."""

    role: str
    password: SecretStr | None
    file: str
    password_variable: str


def reader_login(settings: Settings) -> Login:
    """Return the dashboard's read-only login."""
    return Login(
        settings.dashboard_role,
        settings.reader_password,
        "reader.password",
        "PRISM_READER_PASSWORD",
    )


def runner_login(settings: Settings) -> Login:
    """Return the live runner's login."""
    return Login(
        settings.runner_role, settings.runner_password, "runner.password", "PRISM_RUNNER_PASSWORD"
    )


def password_file(settings: Settings, login: Login | None = None) -> Path:
    """Return where the workspace keeps the generated password of ``login`` (the reader's by
    default)."""
    return settings.home / (login or reader_login(settings)).file


def login_password(settings: Settings, login: Login, create: bool = False) -> str | None:
    """Return ``login``'s password: the setting, else the workspace's (generated when
    ``create`` and missing, atomically, so concurrent processes agree), else None."""
    if login.password is not None and login.password.get_secret_value():
        return login.password.get_secret_value()
    path = password_file(settings, login)
    if path.exists():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip() or None
    with os.fdopen(handle, "w") as out:
        out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def ensure_login(engine: Engine, settings: Settings, login: Login) -> bool:
    """Give ``login``'s role LOGIN with its password and no other attribute, when the role
    exists and the owner may alter roles; return whether it did."""
    if not login.role:
        return False
    with engine.begin() as conn:
        # Processes opening the database at once (flow runs of several deployments) would
        # otherwise ALTER the same role concurrently: "tuple concurrently updated".
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLE_LOCK})
        allowed = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r) AND "
                "(SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)"
            ),
            {"r": login.role},
        ).scalar()
        if not allowed:
            return False
        password = login_password(settings, login, create=True)
        quoted = conn.execute(
            text("SELECT quote_ident(:r), quote_literal(:p)"), {"r": login.role, "p": password}
        ).one()
        conn.execute(
            text(
                f"ALTER ROLE {quoted[0]} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD {quoted[1]}"
            )
        )
    return True


def can_log_in(engine: Engine, role: str) -> bool:
    """Return whether ``role`` exists with LOGIN on ``engine``'s server."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).scalar()
        )


def ensure_logins(engine: Engine, settings: Settings) -> dict[str, bool]:
    """Set up the reader's and the runner's logins; return, per role, whether it was."""
    return {
        login.role: ensure_login(engine, settings, login)
        for login in (reader_login(settings), runner_login(settings))
    }


def login_url(settings: Settings, main_url: str, login: Login) -> str:
    """Return ``main_url`` (the main database's libpq URL) logged in as ``login``'s role."""
    password = login_password(settings, login)
    if not login.role or password is None:
        raise ConfigError(
            f"no password for the login {login.role or '(no role configured)'}: set "
            f"{login.password_variable}, or migrate once with `prism db upgrade`, which "
            f"generates one into the workspace ({login.file})"
        )
    return (
        make_url(main_url)
        .set(username=login.role, password=password)
        .render_as_string(hide_password=False)
    )


def reader_url(settings: Settings, main_url: str) -> str:
    """Return ``main_url`` logged in as the dashboard's read-only role."""
    return login_url(settings, main_url, reader_login(settings))


def runner_url(settings: Settings, main_url: str) -> str:
    """Return ``main_url`` logged in as the runner's role."""
    return login_url(settings, main_url, runner_login(settings))
