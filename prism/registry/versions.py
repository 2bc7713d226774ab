"""Registered model versions as the CLI, the dashboard and the runner read them: every version with
its aliases, one version's details, the champion, and the champion loaded as a pyfunc model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prism.core.errors import ConfigError, DataUnavailable
from prism.research.mlflow_store import mlflow_client

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from prism.core.settings import Settings

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

    @classmethod
    def from_record(
        cls,
        name: str,
        version: str,
        aliases: list[str],
        run_id: str | None,
        created_ms: int,
        tags: dict[str, str],
    ) -> VersionInfo:
        """Return the version from the registry's fields (creation time in epoch ms); the
        approval is read from the tags promotion sets."""
        return cls(
            name=name,
            version=str(version),
            aliases=sorted(aliases),
            run_id=str(run_id),
            created_at=datetime.fromtimestamp(created_ms / 1000, tz=UTC),
            approved_by=tags.get("approved_by"),
            approved_at=tags.get("approved_at"),
            reason=tags.get("approval_reason"),
            tags=dict(tags),
        )


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Return every version of every registered model, newest first: read from the SQLite
    store directly when it can (:mod:`prism.registry.sqlite_registry`, seconds faster), else
    through MLflow's client."""
    from prism.registry.sqlite_registry import read_versions

    records = read_versions(settings.mlflow_tracking_uri)
    if records is not None:
        direct = (VersionInfo.from_record(*record) for record in records)
        return sorted(direct, key=lambda v: (v.name, -int(v.version)))
    client = mlflow_client(settings)
    rows = []
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            rows.append(_version_info(client, version))
    return sorted(rows, key=lambda v: (v.name, -int(v.version)))


def _version_info(client: MlflowClient, version: ModelVersion) -> VersionInfo:
    full = client.get_model_version(version.name, version.version)
    return VersionInfo.from_record(
        full.name,
        full.version,
        list(full.aliases),
        full.run_id,
        full.creation_timestamp,
        dict(full.tags),
    )


def version_info(settings: Settings, version: str) -> VersionInfo:
    """Return one version of the settings' model, or a ConfigError naming the versions."""
    from mlflow.exceptions import MlflowException

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
    from mlflow.exceptions import MlflowException

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
    import mlflow.pyfunc

    info = champion(settings, alias)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{alias}")
    return info, model
