"""The MLflow store a process talks to, and a client on it, with nothing else of tracking
imported: commands that only read the registry (``prism models list``) pay for MLflow's client
and no more (no plotting, no pandas-heavy tracking helpers)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prism.core.settings import Settings, export_service_environment

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def mlflow_client(settings: Settings) -> MlflowClient:
    """Return an MLflow client on the configured store (see :func:`connect`)."""
    from mlflow.tracking import MlflowClient

    connect(settings)
    return MlflowClient()


def connect(settings: Settings) -> None:
    """Point MLflow at the configured store (the local one under ``mlruns/``, or the server
    ``MLFLOW_TRACKING_URI`` names), quietly."""
    import mlflow

    export_service_environment(settings)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
