"""The read-only login ``prism_reader``: its password, and the URL the dashboard connects with.

Migration 0008 creates the role with ``SELECT`` on Prism's schemas. After every migration the
owner side (:func:`ensure_reader_login`, called by :func:`prism.db.engine.open_database`) gives
it ``LOGIN`` with its password: ``PRISM_READER_PASSWORD`` when set (docker compose, a managed
server), else one generated once into the workspace (``reader.password``, mode 0600). The
embedded server asks that role for its password (``pg_hba.conf``, see
:mod:`prism.db.embedded`); :func:`reader_url` is the main database's URL logged in as the role,
which is all the dashboard gets: it never connects as the owner and never migrates.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from prism.core.errors import ConfigError
from prism.core.settings import Settings

PASSWORD_FILE = "reader.password"


def password_file(settings: Settings) -> Path:
    """Return where the workspace keeps the generated reader password."""
    return settings.home / PASSWORD_FILE


def reader_password(settings: Settings, create: bool = False) -> str | None:
    """Return the reader's password: the setting, else the workspace's (generated when
    ``create`` and missing, atomically, so concurrent processes agree), else None."""
    if settings.reader_password is not None and settings.reader_password.get_secret_value():
        return settings.reader_password.get_secret_value()
    path = password_file(settings)
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


def ensure_reader_login(engine: Engine, settings: Settings) -> bool:
    """Give the reader role LOGIN with its password and no other attribute, when the role
    exists and the owner may alter roles; return whether it did."""
    role = settings.dashboard_role
    if not role:
        return False
    with engine.begin() as conn:
        allowed = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r) AND "
                "(SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)"
            ),
            {"r": role},
        ).scalar()
        if not allowed:
            return False
        password = reader_password(settings, create=True)
        quoted = conn.execute(
            text("SELECT quote_ident(:r), quote_literal(:p)"), {"r": role, "p": password}
        ).one()
        conn.execute(
            text(
                f"ALTER ROLE {quoted[0]} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD {quoted[1]}"
            )
        )
    return True


def reader_url(settings: Settings, main_url: str) -> str:
    """Return ``main_url`` (the main database's libpq URL) logged in as the reader role."""
    role = settings.dashboard_role
    password = reader_password(settings)
    if not role or password is None:
        raise ConfigError(
            f"no password for the read-only login {role or '(PRISM_DASHBOARD_ROLE is empty)'}: "
            "set PRISM_READER_PASSWORD (or PRISM_DASHBOARD_DATABASE_URL), or migrate once with "
            "`prism db upgrade`, which generates one into the workspace"
        )
    return (
        make_url(main_url)
        .set(username=role, password=password)
        .render_as_string(hide_password=False)
    )
