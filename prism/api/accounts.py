"""The API's users and keys in ``config.api_users`` and ``config.api_keys``.

Every change is written to ``audit.system_events`` in the same transaction, naming who made
it. Authentication answers one vague refusal for a wrong user, a wrong password, a disabled
user, or an unknown, revoked or expired key, so a caller cannot probe which it was.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from prism.api.security import (
    AuthError,
    NewKey,
    check_role,
    hash_password,
    new_api_key,
    secret_hash,
    split_api_key,
    verify_password,
)
from prism.core.errors import ConfigError
from prism.core.events import record_event

REFUSED = "invalid credentials"
MIN_PASSWORD = 12


@dataclass(frozen=True)
class Principal:
    """Someone authenticated: the subject tokens name, the role, and how they proved it."""

    subject: str
    role: str
    credential: str


def add_user(engine: Engine, username: str, password: str, role: str, by: str) -> None:
    """Create an API user (password of at least :data:`MIN_PASSWORD` characters)."""
    check_role(role)
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO config.api_users (username, password_hash, role) "
                    "VALUES (:u, :h, :r)"
                ),
                {"u": username, "h": hash_password(password), "r": role},
            )
            record_event(
                conn,
                "api_user_added",
                "info",
                "api",
                f"API user {username} ({role}) added by {by}",
                {"subject": by, "username": username, "role": role},
            )
    except IntegrityError as err:
        reason = "already exists" if "duplicate" in str(err.orig) else "is not a valid name"
        raise ConfigError(
            f"API user {username!r} {reason} (names: letters, digits, _ . @ -)"
        ) from err


def create_key(
    engine: Engine, name: str, role: str, by: str, days: float | None = None
) -> tuple[NewKey, datetime | None]:
    """Create an API key granting ``role``, valid ``days`` (None: until revoked); return it
    (the only time its secret is seen) and its expiry."""
    check_role(role)
    if days is not None and days <= 0:
        raise ConfigError("--days must be positive")
    made = new_api_key()
    expires = datetime.now(UTC) + timedelta(days=days) if days is not None else None
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.api_keys (key_id, name, secret_hash, role, created_by, "
                "expires_at) VALUES (:id, :name, :hash, :role, :by, :expires)"
            ),
            {
                "id": made.key_id,
                "name": name,
                "hash": made.secret_hash,
                "role": role,
                "by": by,
                "expires": expires,
            },
        )
        record_event(
            conn,
            "api_key_created",
            "info",
            "api",
            f"API key {made.key_id} ({name}, {role}) created by {by}",
            {"subject": by, "key_id": made.key_id, "role": role, "expires_at": expires},
        )
    return made, expires


def revoke_key(engine: Engine, key_id: str, by: str) -> None:
    """Revoke an API key now: no new token, and the tokens it was exchanged for are refused
    within :data:`prism.api.revocations.REFRESH_SECONDS`."""
    with engine.begin() as conn:
        done = conn.execute(
            text(
                "UPDATE config.api_keys SET revoked_at = now() "
                "WHERE key_id = :id AND revoked_at IS NULL"
            ),
            {"id": key_id},
        ).rowcount
        if not done:
            raise ConfigError(f"no active API key {key_id!r}; see `prism api keys list`")
        record_event(
            conn,
            "api_key_revoked",
            "warning",
            "api",
            f"API key {key_id} revoked by {by}",
            {"subject": by, "key_id": key_id},
        )


def disable_user(engine: Engine, username: str, by: str) -> None:
    """Disable an API user now: no new login, and tokens already issued are refused within
    :data:`prism.api.revocations.REFRESH_SECONDS`."""
    with engine.begin() as conn:
        done = conn.execute(
            text(
                "UPDATE config.api_users SET disabled = true WHERE username = :u AND NOT disabled"
            ),
            {"u": username},
        ).rowcount
        if not done:
            raise ConfigError(f"no enabled API user {username!r}; see `prism api users list`")
        record_event(
            conn,
            "api_user_disabled",
            "warning",
            "api",
            f"API user {username} disabled by {by}",
            {"subject": by, "username": username},
        )


def authenticate_password(engine: Engine, username: str, password: str) -> Principal:
    """Return the user ``username`` if ``password`` is theirs, else raise AuthError."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT password_hash, role FROM config.api_users "
                "WHERE username = :u AND NOT disabled"
            ),
            {"u": username},
        ).first()
    if row is None or not verify_password(row.password_hash, password):
        raise AuthError(REFUSED)
    return Principal(username, row.role, "password")


def authenticate_key(engine: Engine, key: str) -> Principal:
    """Return the key's principal (subject ``key:<id>``) if it is known, active and not
    expired, else raise AuthError."""
    key_id, secret = split_api_key(key)
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "UPDATE config.api_keys SET last_used_at = now() WHERE key_id = :id "
                "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
                "RETURNING secret_hash, role, name"
            ),
            {"id": key_id},
        ).first()
        if row is None or not hmac.compare_digest(row.secret_hash, secret_hash(secret)):
            conn.rollback()
            raise AuthError(REFUSED)
    return Principal(f"key:{key_id}", row.role, "api_key")


def list_users(engine: Engine) -> list[dict[str, object]]:
    """Return the users (never their hashes): username, role, disabled, created_at."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT username, role, disabled, created_at FROM config.api_users "
                "ORDER BY username"
            )
        )
        return [dict(r._mapping) for r in rows]


def list_keys(engine: Engine) -> list[dict[str, object]]:
    """Return the keys (never their hashes): key_id, name, role, created_by, created_at,
    expires_at, revoked_at, last_used_at."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT key_id, name, role, created_by, created_at, expires_at, revoked_at, "
                "last_used_at FROM config.api_keys ORDER BY created_at"
            )
        )
        return [dict(r._mapping) for r in rows]
