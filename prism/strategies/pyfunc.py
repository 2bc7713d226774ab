"""A strategy packaged as an ``mlflow.pyfunc`` model, so the runner loads any promoted strategy
the same way: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(bars)``.

The model stores only the strategy's name and parameters; ``predict`` rebuilds it from
:mod:`prism.strategies` and returns its target weights. :func:`strategy_signature` describes
its input (a bar frame) and output (a weight frame) for MLflow, inferred from a few real bars.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import AnyType, ColSpec, Schema

from prism.data.bars import BAR_COLUMNS
from prism.strategies import make_strategy

EXAMPLE_BARS = 3
"""Bars per symbol in a logged model's input example."""


class StrategyModel(PythonModel):
    """Wrap a strategy (by name and parameters) as a pyfunc model."""

    # MLflow 3 turns predict's type hints into a schema and cannot express a bar frame;
    # this class attribute is how MLflow's own ChatModel opts out of that validation.
    _skip_type_hint_validation = True

    def __init__(self, strategy: str, params: dict[str, Any]) -> None:
        self.strategy = strategy
        self.params = dict(params)

    @property
    def warmup(self) -> int:
        """Return the bars of history the strategy needs per decision."""
        return make_strategy(self.strategy, self.params).warmup

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return (time, symbol, weight) for every bar of the bar frame ``model_input``."""
        bars = pd.DataFrame(model_input)
        bars["time"] = pd.to_datetime(bars["time"], utc=True)
        return make_strategy(self.strategy, self.params).target_weights(bars)


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
