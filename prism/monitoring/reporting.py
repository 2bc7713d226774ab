"""The read side the dashboard shows: positions, equity, drawdown, orders, and the champion.

Every function returns a pandas DataFrame whose columns are listed in its docstring; times are
``datetime64[us, UTC]``; money columns are float64 here because they are for display.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text

from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.registry.versions import VersionInfo, champion
from prism.research.tracking import connect


def _frame(engine: Engine, query: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(query), conn, params=params)
    for column in frame.columns:
        if frame[column].dtype == object and column not in ("symbol", "side", "status"):
            with contextlib.suppress(ValueError, TypeError):
                frame[column] = pd.to_numeric(frame[column])
    return frame


def deployments(engine: Engine) -> list[str]:
    """Return the names of the paper/live accounts, alphabetically."""
    with engine.connect() as conn:
        return [
            r[0] for r in conn.execute(text("SELECT deployment FROM trading.accounts ORDER BY 1"))
        ]


def equity_curve(engine: Engine, deployment: str) -> pd.DataFrame:
    """Return time, cash, market_value, equity, gross_exposure, net_exposure, pnl, pnl_pct
    (of initial capital) and drawdown."""
    frame = _frame(
        engine,
        "SELECT s.time, s.cash, s.market_value, s.equity, s.gross_exposure, s.net_exposure, "
        "a.initial_capital FROM trading.portfolio_snapshots s JOIN trading.accounts a "
        "USING (deployment) WHERE s.deployment = :d ORDER BY s.time",
        d=deployment,
    )
    frame["pnl"] = frame["equity"] - frame["initial_capital"]
    frame["pnl_pct"] = frame["pnl"] / frame["initial_capital"]
    frame["drawdown"] = frame["equity"] / frame["equity"].cummax() - 1.0
    return frame.drop(columns="initial_capital")


def positions(engine: Engine, deployment: str) -> pd.DataFrame:
    """Return symbol, quantity, average_price, last_price, market_value, unrealized_pnl,
    realized_pnl and weight (of equity) of each open or once-held position."""
    frame = _frame(
        engine,
        "SELECT p.symbol, p.quantity, p.average_price, o.close AS last_price, "
        "p.realized_pnl FROM trading.positions p LEFT JOIN LATERAL ("
        "  SELECT close FROM market_data.ohlcv b WHERE b.symbol = p.symbol AND b.timeframe = '1d'"
        "  AND b.time <= COALESCE((SELECT max(time) FROM trading.portfolio_snapshots"
        "                          WHERE deployment = :d), now())"
        "  ORDER BY b.time DESC LIMIT 1) o ON true WHERE p.deployment = :d ORDER BY p.symbol",
        d=deployment,
    )
    frame["market_value"] = frame["quantity"] * frame["last_price"]
    frame["unrealized_pnl"] = (frame["last_price"] - frame["average_price"]) * frame["quantity"]
    with engine.connect() as conn:
        equity = conn.execute(
            text(
                "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                "ORDER BY time DESC LIMIT 1"
            ),
            {"d": deployment},
        ).scalar()
    frame["weight"] = frame["market_value"] / (float(equity) if equity else float("nan"))
    return frame


def orders(engine: Engine, deployment: str, limit: int = 200) -> pd.DataFrame:
    """Return the newest orders: decided_at, symbol, side, quantity, status, filled_quantity,
    average_fill_price, commission, model_version, client_order_id."""
    return _frame(
        engine,
        "SELECT decided_at, symbol, side, quantity, status, filled_quantity, average_fill_price, "
        "commission, model_name, model_version, client_order_id FROM trading.orders "
        "WHERE deployment = :d ORDER BY decided_at DESC, symbol LIMIT :n",
        d=deployment,
        n=limit,
    )


def decisions(engine: Engine, deployment: str, limit: int = 200) -> pd.DataFrame:
    """Return the newest audit decisions: time, symbol, action, reasoning, model_version."""
    return _frame(
        engine,
        "SELECT time, symbol, action, reasoning, model_version, client_order_id "
        "FROM audit.decisions WHERE deployment = :d ORDER BY time DESC, symbol LIMIT :n",
        d=deployment,
        n=limit,
    )


@dataclass(frozen=True)
class ChampionReport:
    """The champion model version and the research run it came from."""

    version: VersionInfo
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def champion_report(settings: Settings) -> ChampionReport | None:
    """Return the champion and its MLflow run, or None when nothing is promoted yet."""
    try:
        version = champion(settings)
    except DataUnavailable:
        return None
    connect(settings)
    run = MlflowClient().get_run(version.run_id)
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    return ChampionReport(version, dict(run.data.params), dict(run.data.metrics), tags)
