"""A strategy packaged as an ``mlflow.pyfunc`` model, so the runner loads any promoted strategy
the same way: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(bars)``.

The model stores the strategy's name and parameters; ``predict`` rebuilds it from
:mod:`prism.strategies` and returns its target weights. A trained strategy (the deep ones,
:mod:`prism.strategies.deep`) also leaves its fitted models in the pyfunc model, and the rebuilt
strategy adopts them, so loading does not retrain. It also carries the source of the code
it was gated with (the ``code`` artifact, see :mod:`prism.strategies.code`) and that code's
manifest and hash: :meth:`StrategyModel.code_problems` says whether the code this environment
would run is still that code. :func:`strategy_signature` describes
its input (a bar frame) and output (a weight frame) for MLflow, inferred from a few real bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import AnyType, ColSpec, Schema

from prism.data.bars import BAR_COLUMNS
from prism.strategies import Strategy, make_strategy
from prism.strategies.code import (
    changed_modules,
    code_hash,
    folder_manifest,
    installed_manifest,
)

CODE_ARTIFACT = "code"
"""The model artifact holding the strategy's source files."""
EXAMPLE_BARS = 3
"""Bars per symbol in a logged model's input example."""


class StrategyModel(PythonModel):
    """Wrap a strategy (by name and parameters) as a pyfunc model."""

    # MLflow 3 turns predict's type hints into a schema and cannot express a bar frame;
    # this class attribute is how MLflow's own ChatModel opts out of that validation.
    _skip_type_hint_validation = True

    def __init__(
        self,
        strategy: str,
        params: dict[str, Any],
        code: dict[str, str] | None = None,
        fits: dict[str, Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.params = dict(params)
        self.code = dict(code or {})
        self.fits = dict(fits or {})
        self.code_dir: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the model without the strategy built in this process."""
        return {k: v for k, v in self.__dict__.items() if k != "_built"}

    @property
    def code_sha256(self) -> str:
        """Return the hash of the code the model was logged with ('' when it carries none)."""
        manifest = getattr(self, "code", {})
        return code_hash(manifest) if manifest else ""

    def load_context(self, context: Any) -> None:
        """Remember where MLflow put the ``code`` artifact of the loaded model."""
        artifacts = getattr(context, "artifacts", None) or {}
        self.code_dir = artifacts.get(CODE_ARTIFACT)

    def logged_code_sha256(self) -> str:
        """Return the hash of the source files in the model's ``code`` artifact, as stored now
        ('' when the model carries none or was not loaded through MLflow)."""
        manifest = getattr(self, "code", {})
        folder = getattr(self, "code_dir", None)
        if not manifest or not folder:
            return ""
        return code_hash(folder_manifest(Path(folder), sorted(manifest)))

    def code_problems(self) -> list[str]:
        """Return why the code this environment would run is not the code the model was
        logged with (the model's manifest against its stored sources and the installed
        files); none means it is."""
        manifest = getattr(self, "code", {})
        if not manifest:
            return [
                "the model carries no strategy code (logged before code pinning); re-run its "
                "notebook and promote the new run"
            ]
        problems = []
        if self.code_dir and self.logged_code_sha256() != self.code_sha256:
            problems.append(
                "the source files stored with the model do not match its code manifest "
                f"({self.code_sha256[:12]}); the model's artifacts were altered"
            )
        changed = changed_modules(manifest, installed_manifest(sorted(manifest)))
        if changed:
            problems.append(
                f"the installed strategy code differs from the code the model was logged with "
                f"(code hash {self.code_sha256[:12]}) in {', '.join(changed)}; check out the "
                "run's commit, or re-run the notebook on this code and promote that run"
            )
        return problems

    def build(self) -> Strategy:
        """Return the strategy the model wraps, holding the fitted models it carries (built once
        per loaded model, so a trained network is deserialized once)."""
        built: Strategy | None = self.__dict__.get("_built")
        if built is None:
            built = make_strategy(self.strategy, self.params)
            fits = getattr(self, "fits", {})
            if fits and hasattr(built, "with_fits"):
                built.with_fits(fits)
            self.__dict__["_built"] = built
        return built

    @property
    def warmup(self) -> int:
        """Return the bars of history the strategy needs per decision."""
        return self.build().warmup

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return (time, symbol, weight) for every bar of the bar frame ``model_input``."""
        bars = pd.DataFrame(model_input)
        bars["time"] = pd.to_datetime(bars["time"], utc=True)
        return self.build().target_weights(bars)


def example_bars(bars: pd.DataFrame, per_symbol: int = EXAMPLE_BARS) -> pd.DataFrame:
    """Return the newest ``per_symbol`` bars of each symbol (bar columns only), an input example."""
    ordered = bars[BAR_COLUMNS].sort_values(["symbol", "time"], kind="stable")
    return ordered.groupby("symbol", sort=False).tail(per_symbol).reset_index(drop=True)


def _time_as_any(schema: Schema) -> Schema:
    return Schema(
        [
            ColSpec(AnyType(), column.name, required=column.required)
            if column.name == "time"
            else column
            for column in schema.inputs
        ]
    )


def strategy_signature(model: StrategyModel, example: pd.DataFrame) -> ModelSignature:
    """Return the model's signature, inferred from ``example`` and the weights it predicts.

    Column types come from :func:`mlflow.models.infer_signature`, except ``time``: MLflow's
    datetime type accepts only time-zone-naive values and bar times are UTC-aware, so the
    input column is declared ``Any`` (``predict`` parses it as UTC). The output schema is
    descriptive only; MLflow does not enforce it.
    """
    inferred = infer_signature(example, model.predict(None, example))
    return ModelSignature(inputs=_time_as_any(inferred.inputs), outputs=inferred.outputs)
