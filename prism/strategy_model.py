"""A strategy packaged as an ``mlflow.pyfunc`` model, so the runner loads any promoted strategy
the same way: ``mlflow.pyfunc.load_model("models:/NAME@champion").predict(bars)``.

The model stores only the strategy's name and parameters; ``predict`` rebuilds it from
:mod:`prism.strategies` and returns its target weights.
"""

from __future__ import annotations

import warnings
from typing import Any

import mlflow.pyfunc
import pandas as pd

from prism.strategies import make_strategy


warnings.filterwarnings("ignore", message=r".*type hint", category=UserWarning)


class StrategyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Wrap a strategy (by name and parameters) as a pyfunc model."""

    def __init__(self, strategy: str, params: dict[str, Any]) -> None:
        self.strategy = strategy
        self.params = dict(params)

    @property
    def warmup(self) -> int:
        """Return the bars of history the strategy needs per decision."""
        return make_strategy(self.strategy, self.params).warmup

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Return (time, symbol, weight) for every bar of the bar frame ``model_input``.

        Left without type hints on purpose: MLflow 3 turns hints on ``predict`` into a schema
        and warns that a DataFrame hint is unsupported.
        """
        bars = pd.DataFrame(model_input)
        bars["time"] = pd.to_datetime(bars["time"], utc=True)
        return make_strategy(self.strategy, self.params).target_weights(bars)
