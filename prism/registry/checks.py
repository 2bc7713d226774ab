"""The checks a model version passes before it trades (loading a model is a checked act).

A version the runner's alias points at for the first time trades only if:

- **signature** — its MLflow signature accepts the bar frame the cycle gives ``predict``
  (:func:`prism.data.store.read_bars`' columns and dtypes), judged by MLflow's own
  :func:`mlflow.models.validate_schema`, the check ``predict`` itself would run;
- **approval** — it came through ``prism models promote``: ``models.approvals`` holds a
  ``promote`` record for that model name and version (an alias set by hand has none);
- **lineage** — its MLflow run exists and carries the notebook, git commit and data hash
  (:mod:`prism.registry.lineage` walks that chain from an order).

The pure parts (``*_problems``) take what was read and return the problems found, each a
sentence; :func:`check_version` reads MLflow and the database and gathers them. A refused
version is reported once (:func:`refusal_recorded`), as a critical ``model_refused`` alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, get_model_info, validate_schema
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.data.bars import empty_bars
from prism.data.store import read_bars
from prism.research.tracking import DATA_HASH_TAG, NOTEBOOK_TAG, connect

REFUSED_EVENT = "model_refused"
LINEAGE_TAGS = {"notebook": NOTEBOOK_TAG, "git commit": "git_commit", "data hash": DATA_HASH_TAG}
"""What a version's run must record, by name, and the run tag holding it."""


@dataclass(frozen=True)
class ModelCheck:
    """The verdict on one model version: every problem found (none means it may trade)."""

    model_name: str
    version: str
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Return whether the version may trade."""
        return not self.problems

    def describe(self) -> str:
        """Return one sentence for a person."""
        if self.passed:
            return f"{self.model_name} version {self.version} passed the model checks"
        return f"{self.model_name} version {self.version} refused: " + "; ".join(self.problems)


def signature_problems(signature: ModelSignature | None, bars: pd.DataFrame) -> list[str]:
    """Return why a model with ``signature`` would not accept ``bars`` (a bar frame: ``time``
    datetime64[us, UTC], ``symbol``/``timeframe``/``source`` str, OHLCV float64)."""
    if signature is None or signature.inputs is None:
        return [
            "the model was logged without a signature, so its input cannot be checked against "
            "the bars; log it with prism.research.tracking.log_strategy_model"
        ]
    try:
        validate_schema(bars, signature.inputs)
    except MlflowException as err:
        first = str(err.message).strip().splitlines()[0]
        return [f"its signature does not accept the bars the runner gives it: {first}"]
    return []


def approval_problems(actions: list[str]) -> list[str]:
    """Return why a version whose ``models.approvals`` actions are ``actions`` lacks approval."""
    if "promote" in actions:
        return []
    found = f" (its records: {', '.join(actions)})" if actions else ""
    return [
        "no approval record in models.approvals" + found + ": it did not come through "
        "`prism models promote`, so its alias was set outside Prism"
    ]


def lineage_problems(
    run_id: str | None, tags: dict[str, str] | None, params: dict[str, str]
) -> list[str]:
    """Return why the run ``run_id`` (its ``tags`` and ``params``; ``tags`` None when the run
    is not in the tracking store) does not resolve to a notebook, a commit and a data hash."""
    if not run_id:
        return ["its lineage does not resolve: the version names no MLflow run"]
    if tags is None:
        return [f"its lineage does not resolve: MLflow run {run_id} is not in the tracking store"]
    recorded = {**tags, DATA_HASH_TAG: tags.get(DATA_HASH_TAG) or params.get("data_hash", "")}
    missing = [name for name, tag in LINEAGE_TAGS.items() if not recorded.get(tag)]
    if missing:
        return [
            f"its lineage does not resolve: MLflow run {run_id} records no {', '.join(missing)}"
        ]
    return []


def approval_actions(engine: Engine, model_name: str, version: str) -> list[str]:
    """Return the actions ``models.approvals`` records for ``model_name`` ``version``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action FROM models.approvals WHERE model_name = :m AND version = :v "
                "ORDER BY decided_at, id"
            ),
            {"m": model_name, "v": version},
        ).scalars()
        return [str(action) for action in rows]


def sample_bars(
    engine: Engine, symbols: list[str], timeframe: str, as_of: datetime
) -> pd.DataFrame:
    """Return the newest bar of each symbol up to ``as_of`` as the cycle reads them (an empty
    bar frame, with the same dtypes, when none is stored)."""
    try:
        return read_bars(engine, symbols, end=as_of, timeframe=timeframe, last=1)
    except DataUnavailable:
        return empty_bars()


def _run_record(client: MlflowClient, run_id: str) -> tuple[dict[str, str] | None, dict[str, str]]:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None, {}
    return dict(run.data.tags), dict(run.data.params)


def check_version(
    engine: Engine, settings: Settings, model_name: str, version: str, bars: pd.DataFrame
) -> ModelCheck:
    """Return the verdict on ``model_name`` ``version`` of the settings' MLflow registry, for
    a deployment that will give it ``bars``."""
    connect(settings)
    client = MlflowClient()
    problems = approval_problems(approval_actions(engine, model_name, version))
    try:
        registered = client.get_model_version(model_name, version)
    except MlflowException:
        return ModelCheck(
            model_name, version, (*problems, "the version is not in the MLflow registry")
        )
    try:
        signature = get_model_info(f"models:/{model_name}/{version}").signature
        problems += signature_problems(signature, bars)
    except (MlflowException, OSError) as err:
        problems.append(f"its model could not be read from the registry: {err}")
    run_id = str(registered.run_id) if registered.run_id else None
    tags, params = _run_record(client, run_id) if run_id else (None, {})
    problems += lineage_problems(run_id, tags, params)
    return ModelCheck(model_name, version, tuple(problems))


def refusal_recorded(engine: Engine, deployment: str, model_name: str, version: str) -> bool:
    """Return whether a ``model_refused`` event for this deployment and version exists."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT 1 FROM audit.system_events WHERE event_type = :kind "
                "AND metadata->>'deployment' = :d AND metadata->>'model_name' = :m "
                "AND metadata->>'version' = :v LIMIT 1"
            ),
            {"kind": REFUSED_EVENT, "d": deployment, "m": model_name, "v": version},
        ).first()
    return found is not None
