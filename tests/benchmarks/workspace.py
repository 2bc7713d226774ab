"""A fresh Prism workspace for one benchmark: its own embedded PostgreSQL and MLflow store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from prism.core.settings import Settings
from prism.db import embedded
from prism.db.engine import open_database

WORKSPACE_KEYS = ("PRISM_HOME", "PRISM_MLRUNS_DIR", "PRISM_DATABASE_URL", "MLFLOW_TRACKING_URI")


@contextmanager
def fresh_workspace(root: Path, **env: str) -> Iterator[tuple[Engine, Settings]]:
    """Point the process at a new workspace under ``root`` (plus the ``env`` variables), yield
    its engine and settings, then stop its server and restore the environment."""
    saved = {k: os.environ.get(k) for k in (*WORKSPACE_KEYS, *env)}
    os.environ.update(PRISM_HOME=str(root / "home"), PRISM_MLRUNS_DIR=str(root / "mlruns"), **env)
    for key in ("PRISM_DATABASE_URL", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    settings = Settings()
    engine = open_database(settings)
    try:
        yield engine, settings
    finally:
        engine.dispose()
        embedded.stop(settings.pgdata)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
