"""Tokens, roles, key formats and the rate limiter, without a database."""

from __future__ import annotations

import base64
import json

import pytest

from prism.api.ratelimit import RateLimiter
from prism.api.security import (
    ROLES,
    AuthError,
    SigningKeys,
    hash_password,
    new_api_key,
    role_allows,
    secret_hash,
    split_api_key,
    verify_password,
)
from prism.core.errors import ConfigError

KEYS = SigningKeys.parse("new:" + "a" * 40 + ",old:" + "b" * 40)


def test_a_token_verifies_with_its_subject_role_and_expiry():
    token, expires = KEYS.issue("alice", "trader", 10, "password", now=1_000_000)
    claims = KEYS.verify(token, now=1_000_000 + 599)
    assert (claims.subject, claims.role, claims.expires, claims.key_id) == (
        "alice",
        "trader",
        1_000_600,
        "new",
    )
    assert expires == 1_000_600
    with pytest.raises(AuthError, match="expired"):
        KEYS.verify(token, now=1_000_600)


def test_a_token_whose_payload_was_edited_is_refused():
    token, _ = KEYS.issue("alice", "viewer", 10, "password")
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="signature"):
        KEYS.verify(f"{head}.{forged}.{signature}")
    with pytest.raises(AuthError, match="malformed"):
        KEYS.verify("not.a-token")


def test_a_token_of_the_previous_key_verifies_until_that_key_is_dropped():
    old_token, _ = SigningKeys.parse("old:" + "b" * 40).issue("bob", "viewer", 10, "api_key")
    assert KEYS.verify(old_token).subject == "bob"
    with pytest.raises(AuthError, match="unknown or retired"):
        SigningKeys.parse("new:" + "a" * 40).verify(old_token)


def test_a_short_signing_secret_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 32 characters"):
        SigningKeys.parse("k:short")


def test_roles_allow_themselves_and_those_below_only():
    for i, role in enumerate(ROLES):
        assert [role_allows(role, needed) for needed in ROLES] == [j <= i for j in range(5)]
    assert not role_allows("root", "viewer")


def test_a_password_hash_verifies_only_its_password():
    stored = hash_password("a long passphrase")
    assert verify_password(stored, "a long passphrase")
    assert not verify_password(stored, "a long passphrasE")
    assert not verify_password("not a hash", "a long passphrase")


def test_an_api_key_splits_into_its_id_and_a_secret_matching_the_stored_hash():
    made = new_api_key()
    key_id, secret = split_api_key(made.key)
    assert key_id == made.key_id
    assert secret_hash(secret) == made.secret_hash
    with pytest.raises(AuthError, match="malformed"):
        split_api_key("sk_live_abc")


def test_the_limiter_refuses_the_request_over_the_rate_and_says_when_to_retry():
    clock = [0.0]
    limiter = RateLimiter(60, clock=lambda: clock[0])
    assert [limiter.take("k") for _ in range(60)] == [0] * 60
    assert limiter.take("k") == 1
    assert limiter.take("other") == 0
    clock[0] = 1.0
    assert limiter.take("k") == 0
