"""Who may call the API: roles, password hashes, API key secrets and signed access tokens.

Roles are ordered (``viewer`` < ``researcher`` < ``trader`` < ``approver`` < ``admin``); a
route names the lowest role it accepts. Passwords are hashed with argon2id (``argon2-cffi``).
An API key is ``prk_<key id>_<secret>``; the database keeps only the SHA-256 of the secret
(32 random bytes: a slow hash buys nothing there) and compares in constant time.

Access tokens are compact JWTs signed with HMAC-SHA256 (RFC 7519 / 7515 ``HS256``), written
here with the standard library so no extra dependency is needed. The header names the key id
(``kid``) that signed it; :class:`SigningKeys` signs with its first key and verifies with any
of them, so a key is rotated by putting a new one first and dropping the old one once the
tokens it signed have expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from prism.core.errors import ConfigError
from prism.core.settings import Settings

ROLES = ("viewer", "researcher", "trader", "approver", "admin")
"""API roles, lowest first: each role may do what the ones before it may."""

KEY_FILE = "api-signing.key"
KEY_PREFIX = "prk"

_hasher = PasswordHasher()


class AuthError(Exception):
    """A credential or token was refused; the message says why (never echoing a secret)."""


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise a ConfigError naming them."""
    if role not in ROLES:
        raise ConfigError(f"unknown API role {role!r}; use one of {', '.join(ROLES)}")
    return role


def role_allows(role: str, needed: str) -> bool:
    """Return whether ``role`` is ``needed`` or above it."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``stored_hash``."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class NewKey:
    """A freshly made API key: the whole key is shown once, only its hash is stored."""

    key_id: str
    secret_hash: str
    key: str


def new_api_key() -> NewKey:
    """Return a new random API key and the hash to store."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, secret_hash(secret), f"{KEY_PREFIX}_{key_id}_{secret}")


def secret_hash(secret: str) -> str:
    """Return the stored form of an API key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(key: str) -> tuple[str, str]:
    """Return ``(key id, secret)`` of an API key, or raise AuthError if it is malformed."""
    prefix, _, rest = key.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        raise AuthError("malformed API key (expected prk_<id>_<secret>)")
    return key_id, secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who, with which role, through which credential."""

    subject: str
    role: str
    expires: int
    credential: str
    key_id: str
    issued: int = 0
    """When the token was issued (Unix seconds): a credential revoked later refuses it."""


class SigningKeys:
    """The keys tokens are signed and verified with: ``[(kid, secret), …]``, signer first."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError("PRISM_API_SIGNING_KEYS holds no key; give kid:secret")
        self.keys = dict(keys)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> SigningKeys:
        """Read ``kid:secret,kid:secret`` (secrets of at least 32 characters)."""
        keys = []
        for part in (p.strip() for p in text.split(",")):
            kid, sep, secret = part.partition(":")
            if not part:
                continue
            if not sep or not kid or len(secret) < 32:
                raise ConfigError(
                    "PRISM_API_SIGNING_KEYS entries must be kid:secret with a secret of at "
                    f"least 32 characters (entry {kid or '?'!r} is not)"
                )
            keys.append((kid, secret.encode()))
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        """Return the configured keys, else the workspace's generated one (made on first
        use, mode 0600)."""
        if settings.api_signing_keys is not None:
            return cls.parse(settings.api_signing_keys.get_secret_value())
        path: Path = settings.home / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(f"k{secrets.token_hex(3)}:{secrets.token_urlsafe(48)}\n")
        return cls.parse(path.read_text().strip())

    def issue(
        self, subject: str, role: str, minutes: float, credential: str, now: float | None = None
    ) -> tuple[str, int]:
        """Return a token for ``subject`` with ``role`` and its expiry (Unix seconds)."""
        issued = int(now if now is not None else time.time())
        expires = issued + int(minutes * 60)
        header = {"alg": "HS256", "typ": "JWT", "kid": self.current}
        payload = {
            "sub": subject,
            "role": check_role(role),
            "iat": issued,
            "exp": expires,
            "cred": credential,
            "jti": secrets.token_hex(8),
        }
        signing_input = ".".join(
            _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
        )
        signature = hmac.new(self.keys[self.current], signing_input.encode(), "sha256").digest()
        return f"{signing_input}.{_b64(signature)}", expires

    def verify(self, token: str, now: float | None = None) -> Claims:
        """Return the claims of a token signed by one of the keys and not expired, else raise
        AuthError saying why."""
        try:
            head, body, signature = token.split(".")
            header: dict[str, Any] = json.loads(_unb64(head))
            payload: dict[str, Any] = json.loads(_unb64(body))
            given = _unb64(signature)
        except ValueError as err:
            raise AuthError("malformed token") from err
        if header.get("alg") != "HS256":
            raise AuthError("token algorithm must be HS256")
        key = self.keys.get(str(header.get("kid")))
        if key is None:
            raise AuthError("token signed with an unknown or retired key")
        expected = hmac.new(key, f"{head}.{body}".encode(), "sha256").digest()
        if not hmac.compare_digest(expected, given):
            raise AuthError("bad token signature")
        moment = now if now is not None else time.time()
        if not isinstance(payload.get("exp"), int) or payload["exp"] <= moment:
            raise AuthError("token expired")
        if payload.get("role") not in ROLES or not isinstance(payload.get("sub"), str):
            raise AuthError("token without a valid subject and role")
        issued = payload.get("iat")
        return Claims(
            payload["sub"],
            payload["role"],
            payload["exp"],
            str(payload.get("cred")),
            header["kid"],
            issued if isinstance(issued, int) else 0,
        )
