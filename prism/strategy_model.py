"""A strategy packaged as an ``mlflow.pyfunc`` model, so the runner loads any promoted strategy
the same way: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(bars)``.

The model stores only the strategy's name and parameters; ``predict`` rebuilds it from
:mod:`prism.strategies` and returns its target weights.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from prism.strategies import make_strategy


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
