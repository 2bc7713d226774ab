"""The API over the test database and a fresh MLflow store: an app, a TestClient, and a token
for each role (issued by the app's own signing keys, as a login would)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from prism.api.app import create_app
from prism.api.deps import ApiContext
from prism.core.settings import Settings
from tests.integration.runner_support import use_mlflow_store

SIGNING = "k2:" + "n" * 40 + ",k1:" + "o" * 40
NOTEBOOKS = Path(__file__).parents[2] / "fixtures" / "notebooks"
"""The API's notebook folder in tests: ``sweep_probe.ipynb``, a notebook that runs in seconds."""


@pytest.fixture(scope="module")
def api_settings(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings with fixed signing keys (k2 signs, k1 still verifies), a generous rate limit
    and the module's own MLflow store. Tests that need empty tables also ask for ``engine``."""
    folder = tmp_path_factory.mktemp("api-mlruns")
    with pytest.MonkeyPatch.context() as patch:
        use_mlflow_store(patch, folder)
        yield settings.model_copy(
            update={
                "api_signing_keys": SecretStr(SIGNING),
                "api_rate_per_minute": 100_000,
                "mlruns_dir": folder,
                "api_notebook_dir": NOTEBOOKS,
            }
        )


@pytest.fixture(scope="module")
def app(api_settings: Settings, migrated_engine: Engine) -> FastAPI:
    return create_app(api_settings, migrated_engine)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def auth(app: FastAPI) -> Callable[[str], dict[str, str]]:
    """``auth(role)``: the Authorization header of a token for subject ``<role>-user``."""
    ctx: ApiContext = app.state.prism

    def header(role: str) -> dict[str, str]:
        token, _ = ctx.keys.issue(f"{role}-user", role, 5, "password")
        return {"Authorization": f"Bearer {token}"}

    return header
