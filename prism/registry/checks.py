"""The checks a model version passes before it trades (loading a model is a checked act).

A version the runner's alias points at for the first time trades only if:

- **signature** — its MLflow signature accepts the bar frame the cycle gives ``predict``
  (:func:`prism.data.store.read_bars`' columns and dtypes), judged by MLflow's own
  :func:`mlflow.models.validate_schema`, the check ``predict`` itself would run;
- **approval** — it came through ``prism models promote``: ``models.approvals`` holds a
  ``promote`` record for that model name and version (an alias set by hand has none);
- **lineage** — its MLflow run exists and carries the notebook, git commit and data hash
  (:mod:`prism.registry.lineage` walks that chain from an order);
- **code** — the model carries the source of its strategy code, the hash of that code is the
  one its approval recorded, the stored sources still hash to it, and the code installed here
  (what ``predict`` will run) is that code: an edit after promotion refuses the version.

The pure parts (``*_problems``) take what was read and return the problems found, each a
sentence; :func:`check_version` reads MLflow and the database and gathers them. A refused
version is reported once (:func:`refusal_recorded`), as a critical ``model_refused`` alert.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, get_model_info, validate_schema
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable, PrismError
from prism.core.settings import Settings
from prism.data.bars import empty_bars
from prism.data.store import read_bars
from prism.research.tracking import DATA_HASH_TAG, NOTEBOOK_TAG, connect
from prism.strategies.pyfunc import StrategyModel

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


def code_problems(approved: str | None, model_sha256: str, model_problems: list[str]) -> list[str]:
    """Return why a model whose code hash is ``model_sha256`` (``model_problems``: what
    :meth:`~prism.strategies.pyfunc.StrategyModel.code_problems` found) may not run, given the
    code hash its approval recorded (``approved``, None when it recorded none)."""
    problems = list(model_problems)
    if not approved:
        problems.append(
            "its approval records no code hash (promoted before code pinning); promote it again"
        )
    elif model_sha256 != approved:
        problems.append(
            f"its code hash {model_sha256[:12] or '(none)'} differs from the {approved[:12]} "
            "its approval recorded; the model was replaced after promotion"
        )
    return problems


def approved_code(engine: Engine, model_name: str, version: str) -> str | None:
    """Return the code hash the newest ``promote`` approval of the version recorded."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT code_sha256 FROM models.approvals WHERE model_name = :m AND version = :v "
                "AND action = 'promote' ORDER BY decided_at DESC, id DESC LIMIT 1"
            ),
            {"m": model_name, "v": version},
        ).scalar()
    return None if found is None else str(found)


def _model_code(uri: str) -> tuple[str, list[str]]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model: Any = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except (MlflowException, OSError, PrismError) as err:
        return "", [f"its model could not be loaded to check its code: {err}"]
    if not isinstance(model, StrategyModel):
        return "", ["its model is not a Prism strategy model, so its code cannot be checked"]
    return model.code_sha256, model.code_problems()


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
    model_sha256, found = _model_code(f"models:/{model_name}/{version}")
    problems += code_problems(approved_code(engine, model_name, version), model_sha256, found)
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
