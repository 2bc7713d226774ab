"""Schemathesis over the app's live OpenAPI schema: every operation the schema lists (so a new
route is covered without touching this file), property-based, with a token of each role and
with no, a malformed, an expired and a foreign-signed token. Every answer must be one the
schema documents (status code, content type, body schema, headers), never a 5xx; every error is
RFC 9457 problem details; a request without a valid token is 401 and one below the route's role
is 403, before any handler runs.

It runs in-process (ASGI) on the real app over the test database, with bars, a deployment, an
order and a fill stored first, so reads return rows and mutating routes (halt, resume, limits,
promotions, users, keys) act on this module's own disposable state (the tables are emptied
before it and again before the next test). Streaming routes (``text/event-stream``) never end for an
accepted client, so only their refusals are generated here; their deliveries have their own
tests. Examples per operation are bounded (``EXAMPLES``) to keep the run short in CI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig
from sqlalchemy import Engine, create_engine

from prism.api.app import create_app
from prism.api.problems import PROBLEM
from prism.api.rules import PUBLIC, rule_for
from prism.api.security import ROLES, SigningKeys, role_allows
from prism.core.settings import Settings
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from tests.conftest import empty_tables
from tests.integration.api.conftest import SIGNING
from tests.integration.api.test_api_routes import insert_order_and_fill
from tests.integration.runner_support import deploy

pytestmark = pytest.mark.timeout(900)

EXAMPLES = 10
"""Generated requests per operation and mode (positive and negative)."""
REFUSED = ("none", "malformed", "expired", "foreign")
"""Credentials that must be refused (401) on every route that is not public."""
FOREIGN = SigningKeys.parse("k9:" + "f" * 40)
"""Keys the app does not know: a token they sign has a valid shape but a wrong signature."""

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "all", "max-examples": EXAMPLES, "no-shrink": True},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "request-timeout": 120,
        "checks": {
            # A schema-valid request naming a deployment, strategy or limit that does not exist
            # is the caller's mistake the schema cannot express: 400 problem details.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "429"]
            },
        },
    }
)


def _documented() -> dict[str, Any]:
    """The OpenAPI schema of an app built as ``prism api`` builds it, over an engine that never
    connects: the schema depends on the routes alone, and the test compares it with the one the
    database-backed app serves."""
    offline = Settings(api_signing_keys=SecretStr(SIGNING))
    nowhere = create_engine("postgresql+psycopg://schema@/offline")
    return create_app(offline, nowhere, reader=nowhere).openapi()


DOCUMENTED = _documented()
schema = schemathesis.openapi.from_dict(DOCUMENTED, config=CONFIG)


@pytest.fixture(scope="module")
def credentials(app: FastAPI, migrated_engine: Engine) -> Callable[[str], dict[str, str]]:
    """Empty the tables and store this module's disposable state, then return
    ``credentials(who)``: the headers of a token of role ``who``, or of one of the refused
    kinds (:data:`REFUSED`). The next test's ``engine`` empties the tables again."""
    empty_tables(migrated_engine)
    ingest(migrated_engine, ArchBarSource())
    deploy(migrated_engine, "desk")
    insert_order_and_fill(migrated_engine, "schema-1")
    keys: SigningKeys = app.state.prism.keys

    def headers(who: str) -> dict[str, str]:
        if who == "none":
            return {}
        if who == "malformed":
            return {"Authorization": "Bearer not.a-token"}
        if who == "expired":
            token, _ = keys.issue("late-user", "admin", -1, "password")
        elif who == "foreign":
            token, _ = FOREIGN.issue("forger", "admin", 5, "password")
        else:
            token, _ = keys.issue(f"{who}-user", who, 5, "password")
        return {"Authorization": f"Bearer {token}"}

    return headers


def _streams(case: Any) -> bool:
    """Whether the operation answers an accepted client with a never-ending event stream."""
    definition = case.operation.definition.raw
    return any(
        "text/event-stream" in (answer.get("content") or {})
        for answer in definition.get("responses", {}).values()
    )


@schema.parametrize()
@schema.given(who=st.sampled_from((*ROLES, *REFUSED)))
@settings(
    deadline=None,
    derandomize=True,  # the same requests on every CI run; widen EXAMPLES to explore more
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_answers_only_as_its_schema_documents(
    case: Any, who: str, app: FastAPI, credentials: Callable[[str], dict[str, str]]
) -> None:
    needed = rule_for(case.method.upper(), case.path)
    if _streams(case) and (needed == PUBLIC or (who in ROLES and role_allows(who, needed))):
        who = "none"
    sent = credentials(who)
    response = case.call(headers=sent, app=app)
    case.validate_response(response, headers=sent, transport_kwargs={"app": app})
    status = response.status_code
    if response.headers.get("content-type") == [PROBLEM]:
        problem = response.json()
        assert problem["status"] == status and problem["detail"], problem
    if needed == PUBLIC:
        return
    if who in REFUSED:
        assert status == 401, (who, response.text)
        assert response.headers["www-authenticate"] == ["Bearer"]
    elif not role_allows(who, needed):
        assert status == 403, (who, response.text)
    else:
        assert status not in (401, 403), (who, response.text)


def test_the_schema_generated_from_is_the_one_the_live_app_serves(client: TestClient) -> None:
    assert client.get("/openapi.json").json() == DOCUMENTED
