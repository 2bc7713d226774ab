"""What the runner's integration tests share: the traded symbols, capital, costs and limits, a
strategy source that bypasses the registry, deployments, and a strategy logged as a research run
the way the notebooks log it (for tests that go through a real MLflow registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.models import ModelSignature
from sqlalchemy import Engine

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.settings import GateSettings, Settings
from prism.live import deployments, risk, steps
from prism.research import tracking
from prism.research.evaluation import validation_tags
from prism.strategies import SmaCrossover

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
LENIENT = GateSettings(min_sharpe=-100.0, max_drawdown=1.0, min_trades=1, min_deflated_sharpe=0.0)
"""Gates every honest backtest of the SMA crossover passes (its checks are still required)."""
RESEARCH_SPLIT = pd.Timestamp("2015-01-02", tz="UTC")
"""Where the out-of-sample segment of a test's research run begins."""


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
    strategy: Any,
    bars: pd.DataFrame,
    signature: ModelSignature | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Return the id of a research run as the notebooks log it: a real backtest of ``strategy``
    on ``bars`` (which must be the stored bars, as promotion reads them again), its check tags,
    metrics, equity and trades, and the strategy as a pyfunc model with ``signature`` or the
    one inferred from ``bars`` (no tear sheet). The run is tagged as made from a clean tree
    (the checkout a test runs in may have local edits), plus ``tags``."""
    result = run_backtest(bars, strategy, BacktestConfig())
    checks = validation_tags(strategy, bars, BacktestConfig())
    with tracking.research_run(settings) as run_id:
        tracking.log_backtest_evidence(
            strategy,
            bars,
            result,
            list(bars["symbol"].unique()),
            RESEARCH_SPLIT,
            {**checks, "git_dirty": "false", **(tags or {})},
            signature=signature,
        )
    return run_id
