"""Where a trade cycle gets its strategy: the port (:class:`StrategySource`, which version an
alias points at and that version ready to decide) and the MLflow registry behind it
(:class:`RegistrySource`). Replays and tests pass a fixed source of their own.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pandas as pd
from sqlalchemy import Engine

from prism.core.settings import Settings
from prism.live import steps
from prism.registry import checks


class StrategySource(Protocol):
    """Where a cycle gets its model: which version an alias points at, and that version."""

    def current(self, alias: str) -> tuple[str, str]:
        """Return (model name, version) ``alias`` points at now."""
        ...

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        """Return the loaded model ``version`` (the one ``alias`` points at)."""
        ...


@runtime_checkable
class CheckedSource(Protocol):
    """A strategy source whose versions must pass :mod:`prism.registry.checks` before trading."""

    def check(
        self, engine: Engine, model_name: str, version: str, bars: pd.DataFrame
    ) -> checks.ModelCheck:
        """Return the verdict on ``version`` of ``model_name`` for a deployment given ``bars``."""
        ...


class RegistrySource:
    """The MLflow registry, with each loaded version kept for the life of the process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[tuple[str, str], steps.LiveStrategy] = {}
        self._client: Any = None

    def current(self, alias: str) -> tuple[str, str]:
        """Return the model name and version ``alias`` points at, asked of the registry on
        every call (a moved alias is seen at the next cycle); only the MLflow client and its
        configuration are kept between calls."""
        # Imported here: MLflow takes ~14 s to import; a fixed source never needs it.
        from mlflow.exceptions import MlflowException

        # Imported here: pulls in MLflow (~14 s); only the registry source needs it.
        from prism.registry.versions import champion

        if self._client is not None:
            try:
                found = self._client.get_model_version_by_alias(self.settings.model_name, alias)
                return str(found.name), str(found.version)
            except MlflowException:
                pass
        info = champion(self.settings, alias)
        # Imported here: MLflow takes ~14 s to import; a fixed source never needs it.
        from mlflow import MlflowClient

        self._client = MlflowClient()
        return info.name, info.version

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        """Load ``version`` of the model by its number (not through ``alias``, which may have
        moved since, or point at a refused version), once per process."""
        # Imported here: MLflow takes ~14 s to import; a fixed source never needs it.
        import mlflow

        # Imported here: pulls in MLflow (~14 s); only the registry source needs it.
        from prism.research.tracking import connect

        name = self.settings.model_name
        if (name, version) not in self._loaded:
            connect(self.settings)
            model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
            self._loaded[(name, version)] = steps.from_pyfunc(model, name, version)
        return self._loaded[(name, version)]

    def check(
        self, engine: Engine, model_name: str, version: str, bars: pd.DataFrame
    ) -> checks.ModelCheck:
        """Return :func:`prism.registry.checks.check_version`'s verdict on ``version``."""
        return checks.check_version(engine, self.settings, model_name, version, bars)


_REGISTRIES: dict[str, RegistrySource] = {}


def registry_source(settings: Settings, model_name: str | None) -> RegistrySource:
    """Return the process's registry source for ``model_name`` (default: the settings')."""
    named = settings.model_copy(update={"model_name": model_name}) if model_name else settings
    key = f"{named.mlflow_tracking_uri}|{named.model_name}"
    if key not in _REGISTRIES:
        _REGISTRIES[key] = RegistrySource(named)
    return _REGISTRIES[key]
