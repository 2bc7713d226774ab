"""The model registry: promotion gates, registration, the ``champion`` alias, and loading it.

A promotion either passes every gate, registers the run's model (once; promoting the same run
again reuses its version) and points ``champion`` at it, or changes nothing and says which gates
failed. A missing metric fails its gate: the registry fails closed.
"""

from __future__ import annotations

import contextlib
import io
import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prism.config import GateSettings, Settings
from prism.errors import ConfigError, DataUnavailable
from prism.tracking import MODEL_URI_TAG, configure

CHAMPION = "champion"


@dataclass(frozen=True)
class GateResult:
    """One gate: the metric it reads, the threshold, the value found, and whether it passed."""

    gate: str
    metric: str
    threshold: float
    value: float | None
    passed: bool


@dataclass(frozen=True)
class Promotion:
    """The outcome of ``prism models promote``."""

    run_id: str
    model_name: str
    gates: list[GateResult]
    version: str | None

    @property
    def promoted(self) -> bool:
        """Return whether every gate passed and the alias was set."""
        return self.version is not None

    def failed(self) -> list[GateResult]:
        """Return the gates that did not pass."""
        return [gate for gate in self.gates if not gate.passed]


_GATES: list[tuple[str, str, str, Callable[[float, float], bool]]] = [
    ("min_sharpe", "sharpe", ">=", operator.ge),
    ("max_drawdown", "max_drawdown", "<=", operator.le),
    ("min_trades", "n_trades", ">=", operator.ge),
]


def evaluate_gates(metrics: dict[str, float], gates: GateSettings) -> list[GateResult]:
    """Return each gate's verdict on a run's ``metrics``."""
    results = []
    for gate, metric, symbol, compare in _GATES:
        threshold = float(getattr(gates, gate))
        value = metrics.get(metric)
        passed = value is not None and value == value and compare(value, threshold)
        results.append(
            GateResult(f"{metric} {symbol} {threshold:g}", metric, threshold, value, passed)
        )
    return results


def _client(settings: Settings) -> MlflowClient:
    configure(settings)
    return MlflowClient()


def promote(settings: Settings, run_id: str, gates: GateSettings, approved_by: str) -> Promotion:
    """Register ``run_id``'s model and alias it ``champion`` if the gates pass."""
    client = _client(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ConfigError(
            f"no MLflow run with id {run_id!r} in {settings.mlflow_tracking_uri}; "
            "`prism research run` prints the id of each run it makes"
        ) from err
    results = evaluate_gates(run.data.metrics, gates)
    if not all(gate.passed for gate in results):
        return Promotion(run_id, settings.model_name, results, None)
    model_uri = run.data.tags.get(MODEL_URI_TAG)
    if model_uri is None:
        raise ConfigError(
            f"run {run_id} logged no strategy model; promote a run made by "
            "`prism research run notebooks/backtest.ipynb`"
        )
    version = _existing_version(client, settings.model_name, run_id)
    if version is None:
        with contextlib.redirect_stderr(io.StringIO()):
            registered = mlflow.register_model(model_uri, settings.model_name)
        version = str(registered.version)
    tags = {
        "approved_by": approved_by,
        "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gate_results": json.dumps([asdict(g) for g in results]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    return Promotion(run_id, settings.model_name, results, version)


def _existing_version(client: MlflowClient, name: str, run_id: str) -> str | None:
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(versions[0].version) if versions else None


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as ``prism models list`` and the dashboard show it."""

    name: str
    version: str
    aliases: list[str]
    run_id: str
    created_at: datetime
    approved_by: str | None


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Return every version of every registered model, newest first."""
    client = _client(settings)
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
    )


def champion(settings: Settings, alias: str = CHAMPION) -> VersionInfo:
    """Return the version ``alias`` points at, or a DataUnavailable that says how to set it."""
    client = _client(settings)
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
