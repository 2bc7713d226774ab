"""Lineage: from a live order back to the notebook run that produced its model.

order (``trading.orders``) → decision (``audit.decisions`` of the same client order id) → model
version and its aliases (``models.versions``, ``models.approvals`` and the MLflow registry) →
MLflow run (experiment, status, metrics) → notebook (path, git commit, parameters, the hash of
the bars it used). :func:`order_lineage` gathers the chain; ``Lineage.rows()`` gives it as
(step, field, value) rows, which ``prism lineage`` prints and the dashboard shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.research.mlflow_store import mlflow_client

STEPS = ("order", "decision", "model version", "MLflow run", "notebook")

ORDER_SQL = """
SELECT o.client_order_id, o.deployment, o.symbol, o.side, o.quantity, o.status,
       o.filled_quantity, o.average_fill_price, o.broker, o.broker_order_id, o.strategy,
       o.model_name, o.model_version, o.decided_at, o.created_at,
       (SELECT count(*) FROM trading.fills f WHERE f.order_id = o.id) AS fills
FROM trading.orders o WHERE o.client_order_id = :c
"""

DECISION_SQL = """
SELECT time, decision_type, action, reasoning, model_name, model_version,
       signals ->> 'target_weight' AS target_weight, risk_check ->> 'passed' AS risk_passed
FROM audit.decisions WHERE client_order_id = :c ORDER BY time LIMIT 1
"""

MIRROR_SQL = """
SELECT alias, mlflow_run_id, approved_by, approved_at, reason, gates_version, gates_sha256
FROM models.versions WHERE model_name = :m AND version = :v
"""

ALIAS_MOVES_SQL = """
SELECT alias, version FROM models.approvals
WHERE model_name = :m AND action IN ('promote', 'rollback') AND decided_at <= :t
ORDER BY decided_at, id
"""


def aliases_at(moves: list[tuple[str, str]]) -> dict[str, str]:
    """Return where each alias pointed after ``moves`` (alias, version), oldest first, as
    :func:`prism.registry.promotion.promote` moves them: a version promoted to ``champion`` stops
    being the ``challenger``."""
    pointing: dict[str, str] = {}
    for alias, version in moves:
        pointing[alias] = version
        if alias == "champion" and pointing.get("challenger") == version:
            del pointing["challenger"]
    return pointing


@dataclass(frozen=True)
class Lineage:
    """The chain behind one order; a step is empty when that link is not recorded."""

    client_order_id: str
    order: dict[str, Any]
    decision: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    notebook: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str]]:
        """Return (step, field, value) rows from the order down to the notebook."""
        rows: list[tuple[str, str, str]] = []
        for step, values in zip(
            STEPS, (self.order, self.decision, self.model, self.run, self.notebook), strict=True
        ):
            if not values:
                rows.append((step, "-", "not recorded"))
            for name, value in values.items():
                rows.append((step, name, "" if value is None else str(value)))
        return rows


def order_lineage(engine: Engine, settings: Settings, client_order_id: str) -> Lineage:
    """Return the lineage of the order ``client_order_id``; a ConfigError names an unknown one."""
    with engine.connect() as conn:
        order = conn.execute(text(ORDER_SQL), {"c": client_order_id}).mappings().first()
        if order is None:
            raise ConfigError(
                f"no order with client order id {client_order_id!r} in trading.orders; "
                "the dashboard's Orders page and trading.orders list the ids"
            )
        decision = conn.execute(text(DECISION_SQL), {"c": client_order_id}).mappings().first()
        chosen: dict[str, Any] = dict(decision) if decision else {}
        name = order["model_name"] or chosen.get("model_name")
        version = order["model_version"] or chosen.get("model_version")
        mirror = None
        aliases_then: list[str] = []
        if name and version:
            mirror = conn.execute(text(MIRROR_SQL), {"m": name, "v": version}).mappings().first()
            moves = conn.execute(text(ALIAS_MOVES_SQL), {"m": name, "t": order["created_at"]}).all()
            pointing = aliases_at([(str(alias), str(v)) for alias, v in moves])
            aliases_then = sorted(alias for alias, v in pointing.items() if v == version)
    lineage = Lineage(
        client_order_id=client_order_id,
        order={k: v for k, v in order.items() if k not in ("model_name", "model_version")},
        decision=dict(decision) if decision else {},
    )
    if not (name and version):
        return lineage
    client = mlflow_client(settings)
    model, run_id = _model(client, str(name), str(version), mirror, aliases_then)
    run, notebook = _run(client, run_id) if run_id else ({}, {})
    return Lineage(client_order_id, lineage.order, lineage.decision, model, run, notebook)


def _model(
    client: MlflowClient,
    name: str,
    version: str,
    mirror: Any,
    aliases_then: list[str],
) -> tuple[dict[str, Any], str | None]:
    model: dict[str, Any] = {"model": name, "version": version}
    run_id = mirror["mlflow_run_id"] if mirror else None
    try:
        registered = client.get_model_version(name, version)
        model["aliases now"] = ", ".join(registered.aliases) or "(none)"
        run_id = run_id or registered.run_id
    except MlflowException:
        model["aliases now"] = "(version not in the MLflow registry)"
    model["alias when ordered"] = ", ".join(aliases_then) or "(unknown)"
    if mirror:
        model.update(
            {
                "approved by": mirror["approved_by"],
                "approved at": mirror["approved_at"],
                "reason": mirror["reason"],
                "gates version": mirror["gates_version"],
                "gates sha256": mirror["gates_sha256"],
            }
        )
    return model, run_id


def _run(client: MlflowClient, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return {"run id": run_id, "status": "(run not in the tracking store)"}, {}
    experiment = client.get_experiment(run.info.experiment_id)
    metrics = run.data.metrics
    tags = run.data.tags
    params = run.data.params
    details = {
        "run id": run_id,
        "experiment": experiment.name if experiment else run.info.experiment_id,
        "status": run.info.status,
        "metrics": ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())),
    }
    notebook = {
        "path": tags.get("prism.notebook") or tags.get("source"),
        "git commit": tags.get("git_commit"),
        "git dirty": tags.get("git_dirty"),
        "prism version": tags.get("prism.version"),
        "parameters": ", ".join(f"{k}={v}" for k, v in sorted(params.items())),
        "data hash": tags.get("prism.data_hash") or params.get("data_hash"),
        "data span": _span(tags, params),
    }
    return details, notebook


def _span(tags: dict[str, str], params: dict[str, str]) -> str | None:
    start = tags.get("prism.data_start") or params.get("start")
    end = tags.get("prism.data_end") or params.get("end")
    return f"{start} → {end}" if start or end else None
