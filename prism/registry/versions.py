"""Registered model versions as the CLI, the dashboard and the runner read them: every version with
its aliases, one version's details, the champion, and the champion loaded as a pyfunc model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prism.core.errors import ConfigError, DataUnavailable
from prism.core.settings import Settings
from prism.research.mlflow_store import mlflow_client

CHAMPION = "champion"
"""The alias the runner trades (promotion moves it; rollback moves it back)."""


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as ``prism models list`` and the dashboard show it."""

    name: str
    version: str
    aliases: list[str]
    run_id: str
    created_at: datetime
    approved_by: str | None
    approved_at: str | None = None
    reason: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Return every version of every registered model, newest first."""
    client = mlflow_client(settings)
    rows = []
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            rows.append(_version_info(client, version))
    return sorted(rows, key=lambda v: (v.name, -int(v.version)))


def _version_info(client: MlflowClient, version: ModelVersion) -> VersionInfo:
    full = client.get_model_version(version.name, version.version)
    return VersionInfo(
        name=full.name,
        version=str(full.version),
        aliases=list(full.aliases),
        run_id=str(full.run_id),
        created_at=datetime.fromtimestamp(full.creation_timestamp / 1000, tz=UTC),
        approved_by=full.tags.get("approved_by"),
        approved_at=full.tags.get("approved_at"),
        reason=full.tags.get("approval_reason"),
        tags=dict(full.tags),
    )


def version_info(settings: Settings, version: str) -> VersionInfo:
    """Return one version of the settings' model, or a ConfigError naming the versions."""
    client = mlflow_client(settings)
    try:
        return _version_info(client, client.get_model_version(settings.model_name, version))
    except MlflowException as err:
        raise ConfigError(
            f"model {settings.model_name!r} has no version {version!r}; "
            "`prism models list` shows the versions"
        ) from err


def champion(settings: Settings, alias: str = CHAMPION) -> VersionInfo:
    """Return the version ``alias`` points at, or a DataUnavailable that says how to set it."""
    client = mlflow_client(settings)
    try:
        version = client.get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as err:
        raise DataUnavailable(
            f"model {settings.model_name!r} has no version aliased {alias!r} in "
            f"{settings.mlflow_tracking_uri}; promote a run first: "
            "`prism models promote --run RUN_ID`"
        ) from err
    return _version_info(client, version)


def load_champion(settings: Settings, alias: str = CHAMPION) -> tuple[VersionInfo, object]:
    """Return the ``alias`` version and its loaded pyfunc model."""
    info = champion(settings, alias)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{alias}")
    return info, model
