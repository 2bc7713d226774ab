"""Logins, keys, token rotation, rate limits and the audit trail, against the real database."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from prism.api import accounts
from prism.api.app import create_app
from prism.api.revocations import REFRESH_SECONDS
from prism.api.security import SigningKeys


def events(engine, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT metadata FROM audit.system_events WHERE event_type = :t ORDER BY id"),
            {"t": event_type},
        )
        return [r[0] for r in rows]


def test_a_user_logs_in_with_the_password_flow_and_a_wrong_password_is_refused(client, engine):
    accounts.add_user(engine, "alice", "correct horse battery", "researcher", "test")
    refused = client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": "wrong password!"}
    )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "invalid credentials"
    granted = client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": "correct horse battery"}
    )
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["subject"] == "alice"
    assert me.json()["role"] == "researcher"
    logins = events(engine, "api_call")
    assert [(e["subject"], e["status"]) for e in logins[-2:]] == [("alice", 401), ("alice", 200)]


def test_the_stored_password_is_an_argon2_hash_the_reader_cannot_see(engine, settings):
    accounts.add_user(engine, "bob", "another long password", "viewer", "test")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM config.api_users")).scalar_one()
        readable = conn.execute(
            text("SELECT has_table_privilege('prism_reader', 'config.api_users', 'SELECT')")
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "another long password" not in stored
    assert readable is False


def test_an_api_key_gives_a_token_until_it_is_revoked(client, engine):
    made, _ = accounts.create_key(engine, "scheduler", "trader", "ops")
    granted = client.post("/api/v1/auth/api-key", json={"api_key": made.key})
    assert granted.status_code == 200, granted.text
    assert granted.json()["role"] == "trader"
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {granted.json()['access_token']}"}
    )
    assert me.json()["subject"] == f"key:{made.key_id}"
    accounts.revoke_key(engine, made.key_id, "ops")
    assert client.post("/api/v1/auth/api-key", json={"api_key": made.key}).status_code == 401
    forged = made.key[:-4] + "AAAA"
    accounts.create_key(engine, "other", "viewer", "ops")
    assert client.post("/api/v1/auth/api-key", json={"api_key": forged}).status_code == 401


def test_an_expired_key_is_refused(client, engine):
    made, _ = accounts.create_key(engine, "short", "viewer", "ops", days=1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE config.api_keys SET expires_at = now() - interval '1 second'"))
    assert client.post("/api/v1/auth/api-key", json={"api_key": made.key}).status_code == 401


def test_tokens_of_the_previous_key_work_until_the_key_is_dropped(client, api_settings, engine):
    old = SigningKeys.parse("k1:" + "o" * 40)
    token, _ = old.issue("carol", "viewer", 5, "password")
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).is_success
    dropped = api_settings.model_copy(update={"api_signing_keys": SecretStr("k2:" + "n" * 40)})
    with TestClient(create_app(dropped, engine)) as rotated:
        refused = rotated.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert "unknown or retired key" in refused.json()["detail"]


def test_a_caller_over_its_rate_gets_429_with_retry_after(api_settings, engine):
    limited = api_settings.model_copy(update={"api_rate_per_minute": 3})
    app = create_app(limited, engine)
    token, _ = app.state.prism.keys.issue("dave", "viewer", 5, "password")
    with TestClient(app) as client:
        answers = [
            client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].headers["content-type"] == "application/problem+json"


def test_admin_creates_a_key_through_the_api_and_the_audit_names_the_admin(client, auth, engine):
    made = client.post(
        "/api/v1/admin/keys", json={"name": "grafana", "role": "viewer"}, headers=auth("admin")
    )
    assert made.status_code == 201, made.text
    assert made.json()["api_key"].startswith("prk_")
    listed = client.get("/api/v1/admin/keys", headers=auth("admin")).json()
    assert [k["name"] for k in listed] == ["grafana"]
    assert "secret_hash" not in json.dumps(listed)
    created = events(engine, "api_key_created")
    assert created[-1]["subject"] == "admin-user"
    calls = events(engine, "api_call")
    assert calls[-1]["subject"] == "admin-user" and calls[-1]["status"] == 201
    bad = client.post(
        "/api/v1/admin/keys", json={"name": "x", "role": "wizard"}, headers=auth("admin")
    )
    assert bad.status_code == 400
    assert "unknown API role 'wizard'" in bad.json()["detail"]


def test_the_cli_adds_a_user_and_creates_a_key_that_logs_in(client, engine):
    from typer.testing import CliRunner

    from prism.cli.app import app as cli

    runner = CliRunner()
    added = runner.invoke(
        cli, ["api", "users", "add", "erin", "--role", "trader", "--password", "a fine passphrase"]
    )
    assert added.exit_code == 0, added.output
    short = runner.invoke(cli, ["api", "users", "add", "frank", "--password", "short"])
    assert short.exit_code == 1
    assert "at least 12 characters" in str(short.exception)
    created = runner.invoke(cli, ["api", "keys", "create", "cron", "--role", "researcher"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    token = client.post("/api/v1/auth/api-key", json={"api_key": key})
    assert token.json()["role"] == "researcher"
    login = client.post(
        "/api/v1/auth/token", data={"username": "erin", "password": "a fine passphrase"}
    )
    assert login.json()["role"] == "trader"


def test_revoking_a_key_or_disabling_a_user_ends_the_tokens_already_issued(client, engine):
    from typer.testing import CliRunner

    from prism.cli.app import app as cli

    made, _ = accounts.create_key(engine, "leaked", "trader", "ops")
    key_token = client.post("/api/v1/auth/api-key", json={"api_key": made.key}).json()
    accounts.add_user(engine, "gwen", "a fine passphrase", "admin", "ops")
    login = {"username": "gwen", "password": "a fine passphrase"}
    user_token = client.post("/api/v1/auth/token", data=login).json()
    tokens = [key_token["access_token"], user_token["access_token"]]

    def answers() -> list[int]:
        return [
            client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {t}"}).status_code
            for t in tokens
        ]

    before = answers()
    runner = CliRunner()
    revoked = runner.invoke(cli, ["api", "keys", "revoke", made.key_id])
    disabled = runner.invoke(cli, ["api", "users", "disable", "gwen"])
    deadline = time.monotonic() + REFRESH_SECONDS + 5
    while answers() != [401, 401] and time.monotonic() < deadline:
        time.sleep(0.5)
    refusals = [
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {t}"}).json()["detail"]
        for t in tokens
    ]

    assert before == [200, 200]
    assert revoked.exit_code == 0 and disabled.exit_code == 0, revoked.output + disabled.output
    assert refusals == [
        "the API key this token was issued for has been revoked",
        "this user has been disabled",
    ]
    assert client.post("/api/v1/auth/token", data=login).status_code == 401
    again = runner.invoke(cli, ["api", "users", "disable", "gwen"])
    assert "no enabled API user 'gwen'" in str(again.exception)


def test_an_admin_disables_a_user_through_the_api(client, auth, engine):
    accounts.add_user(engine, "hal", "a fine passphrase", "viewer", "ops")
    login = {"username": "hal", "password": "a fine passphrase"}
    assert client.post("/api/v1/auth/token", data=login).status_code == 200

    done = client.post("/api/v1/admin/users/hal/disable", headers=auth("admin"))
    below = client.post("/api/v1/admin/users/hal/disable", headers=auth("approver"))

    assert done.status_code == 204, done.text
    assert below.status_code == 403
    assert client.post("/api/v1/auth/token", data=login).status_code == 401
    assert [u["disabled"] for u in accounts.list_users(engine) if u["username"] == "hal"] == [True]
