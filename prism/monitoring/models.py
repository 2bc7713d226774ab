"""The Models page: the champion and challenger of each deployment with their research
metrics and MLflow run, and the lineage of a chosen order.

A deployment's model and alias come from ``config.strategies``; an account without a row there
trades ``settings.model_name`` at ``champion`` (as the demo's does). Versions are read from the
MLflow registry; approval and gate results from the ``models.versions`` mirror when it has the
version, else from the version's tags.
"""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from prism.core.settings import Settings
from prism.monitoring.mlflow_reader import client, run_link
from prism.monitoring.sql import read_frame

ALIASES = ("champion", "challenger")
KEY_METRICS = ("sharpe", "oos_sharpe", "max_drawdown", "total_return", "n_trades")
COLUMNS = [
    "deployment",
    "model_name",
    "alias",
    "version",
    "run_id",
    "experiment_id",
    "link",
    "approved_by",
    "approved_at",
    "status",
    *KEY_METRICS,
]


def deployment_models(engine: Engine, settings: Settings) -> pd.DataFrame:
    """Return deployment, model_name and live_alias of every deployment."""
    return read_frame(
        engine,
        "SELECT d.deployment, coalesce(s.model_name, :model) AS model_name, "
        "coalesce(s.model_alias, 'champion') AS live_alias "
        "FROM (SELECT deployment FROM trading.accounts "
        "      UNION SELECT deployment FROM config.strategies) d "
        "LEFT JOIN config.strategies s USING (deployment) ORDER BY 1",
        model=settings.model_name,
    )


def _mirror(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    frame = read_frame(
        engine,
        "SELECT model_name, version, approved_by, approved_at FROM models.versions",
    )
    return {
        (str(r["model_name"]), str(r["version"])): {str(k): v for k, v in r.items()}
        for r in frame.to_dict("records")
    }


def champions_and_challengers(engine: Engine, settings: Settings) -> pd.DataFrame:
    """Return one row per deployment and alias (its live alias, champion, challenger) that
    points at a version: deployment, model_name, alias, version, run_id, experiment_id, link
    (MLflow UI, or None for a local store), approved_by, approved_at, status (of the run) and
    the run's metrics in :data:`KEY_METRICS` (NaN when not logged)."""
    mlflow = client(settings)
    deployments = deployment_models(engine, settings)
    if mlflow is None or deployments.empty:
        return pd.DataFrame({c: [] for c in COLUMNS})
    mirror = _mirror(engine)
    rows = []
    for item in deployments.to_dict("records"):
        aliases = dict.fromkeys([item["live_alias"], *ALIASES])
        for alias in aliases:
            try:
                version = mlflow.get_model_version_by_alias(item["model_name"], alias)
                run_id = str(version.run_id)
                run = mlflow.get_run(run_id)
            except MlflowException:
                continue
            known = mirror.get((version.name, str(version.version)), {})
            rows.append(
                {
                    "deployment": item["deployment"],
                    "model_name": version.name,
                    "alias": alias,
                    "version": str(version.version),
                    "run_id": run_id,
                    "experiment_id": run.info.experiment_id,
                    "link": run_link(settings, run.info.experiment_id, run_id),
                    "approved_by": known.get("approved_by") or version.tags.get("approved_by"),
                    "approved_at": known.get("approved_at") or version.tags.get("approved_at"),
                    "status": run.info.status,
                    **{m: run.data.metrics.get(m, float("nan")) for m in KEY_METRICS},
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def recent_order_ids(engine: Engine, deployment: str | None = None, limit: int = 200) -> list[str]:
    """Return the client order ids of the newest orders (of ``deployment`` when given)."""
    frame = read_frame(
        engine,
        "SELECT client_order_id FROM trading.orders "
        "WHERE (CAST(:d AS text) IS NULL OR deployment = :d) "
        "ORDER BY decided_at DESC, client_order_id LIMIT :n",
        d=deployment,
        n=limit,
    )
    return [str(v) for v in frame["client_order_id"]]


def lineage_available() -> bool:
    """Return whether :mod:`prism.registry.lineage` (order-to-notebook lineage) is installed."""
    try:
        importlib.import_module("prism.registry.lineage")
    except ImportError:
        return False
    return True


def order_lineage(engine: Engine, settings: Settings, client_order_id: str) -> pd.DataFrame | None:
    """Return the lineage of an order as step, field, value rows (order, decision, model
    version, MLflow run, notebook), or None when :mod:`prism.registry.lineage` is not available.
    Raises :class:`~prism.core.errors.ConfigError` naming the order when it does not exist."""
    try:
        lineage = importlib.import_module("prism.registry.lineage")
    except ImportError:
        return None
    rows = lineage.order_lineage(engine, settings, client_order_id).rows()
    return pd.DataFrame(rows, columns=["step", "field", "value"])
