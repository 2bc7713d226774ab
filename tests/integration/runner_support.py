"""What the runner's integration tests share: the traded symbols, capital, costs and limits, a
strategy source that bypasses the registry, deployments, and a strategy logged as a research run
the way the notebooks log it (for tests that go through a real MLflow registry)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from sqlalchemy import Engine

from prism.core.settings import GateSettings, Settings
from prism.live import deployments, risk, steps
from prism.research import tracking
from prism.strategies import SmaCrossover, strategy_params
from prism.strategies.pyfunc import StrategyModel

SYMBOLS = ("SPX", "NDX")
CAPITAL = 1_000_000.0
COSTS = {"commission_bps": 5.0, "slippage_bps": 3.0, "commission_per_share": 0.01}
LOOSE_LIMITS = {
    "max_position_pct": 10.0,
    "max_gross_exposure": 10.0,
    "max_net_exposure": 10.0,
    "max_order_notional": 1e12,
    "daily_loss_limit": 1.0,
    "max_drawdown": 1.0,
}
"""Risk limits far above anything the SMA crossover reaches, so none binds."""
LENIENT = GateSettings(min_sharpe=0.0, max_drawdown=0.9, min_trades=1, min_deflated_sharpe=0.0)
EVIDENCE = {
    "sharpe": 1.0,
    "max_drawdown": 0.2,
    "n_trades": 40,
    "oos_sharpe": 1.1,
    "oos_max_drawdown": 0.12,
    "oos_n_trades": 12,
    "oos_skew": -0.2,
    "oos_kurtosis": 4.0,
    "oos_n_periods": 500,
    "trials": 1,
}
"""Gate metrics of a research run that passes :data:`LENIENT`."""


class FixedSource:
    """A strategy source that always answers with one strategy (the registry is bypassed):
    ``model`` version ``version`` is the SMA crossover 5/20 unless ``strategy`` is given."""

    def __init__(
        self, strategy: SmaCrossover | None = None, model: str = "test-model", version: str = "1"
    ) -> None:
        self.strategy = strategy or SmaCrossover(fast=5, slow=20)
        self.model = model
        self.version = version

    def current(self, alias: str) -> tuple[str, str]:
        return self.model, self.version

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        s = self.strategy
        return steps.LiveStrategy(s.name, self.model, version, s.warmup, self.predict)

    def predict(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The strategy's target weights of ``bars``."""
        return self.strategy.target_weights(bars)


def hold_forty_percent(bars: pd.DataFrame) -> pd.DataFrame:
    """Target weights of a model that always holds 40% of equity in each symbol."""
    return bars[["time", "symbol"]].assign(weight=0.4)


class FortyPercentSource(FixedSource):
    """A fixed-weight model (:func:`hold_forty_percent`, warm-up of one bar) as the
    deployment's."""

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        return steps.LiveStrategy("fixed", self.model, version, 1, hold_forty_percent)


def deploy(
    engine: Engine, name: str, model_name: str | None = None, **params: Any
) -> deployments.Deployment:
    """Add (or replace) the daily deployment ``name`` of :data:`SYMBOLS` with :data:`CAPITAL`."""
    return deployments.upsert_deployment(
        engine,
        deployments.Deployment(name, SYMBOLS, "1d", CAPITAL, model_name=model_name, params=params),
    )


def loosen_limits(engine: Engine, reason: str) -> None:
    """Set the risk limits to :data:`LOOSE_LIMITS`."""
    with engine.begin() as conn:
        for key, value in LOOSE_LIMITS.items():
            risk.set_limit(conn, key, value, reason)


def use_mlflow_store(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Point MLflow (and Prism's settings read from the environment) at a fresh SQLite store
    in ``folder``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(folder))


def research_run(
    settings: Settings,
    strategy: SmaCrossover,
    bars: pd.DataFrame,
    signature: ModelSignature | None = None,
) -> str:
    """Return the id of a research run as the notebooks log it (data tags, gate evidence, the
    strategy as a pyfunc model with ``signature`` or the one inferred from ``bars``), cheaply:
    no backtest, no tear sheet."""
    with tracking.research_run(settings) as run_id:
        tracking.log_data(bars)
        tracking.log_metrics(EVIDENCE)
        mlflow.set_tags({"prism.lookahead_check": "passed", "prism.parity_check": "passed"})
        if signature is None:
            tracking.log_strategy_model(strategy, bars)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name=tracking.MODEL_ARTIFACT,
                    python_model=StrategyModel(strategy.name, strategy_params(strategy)),
                    signature=signature,
                    pip_requirements=tracking.PIP_REQUIREMENTS,
                )
            mlflow.set_tag(tracking.MODEL_URI_TAG, info.model_uri)
    return run_id
