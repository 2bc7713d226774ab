"""Reading MLflow without writing to it: a client on the configured store (or None when a
local store does not exist yet), and links to a run in the MLflow UI."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.tracking import MlflowClient

from prism.core.settings import Settings


def client(settings: Settings) -> MlflowClient | None:
    """Return a client on the tracking store, or None when it is a local SQLite file that
    does not exist (nothing was ever tracked; opening it would create it)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return MlflowClient(uri)


def run_link(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    """Return the MLflow UI address of a run when the store is an MLflow server, else None
    (a local store is browsed with ``mlflow ui --backend-store-uri ...``)."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
