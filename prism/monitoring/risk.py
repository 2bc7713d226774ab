"""The Risk page: what the live portfolio could lose, how close it is to each risk limit, how
its holdings move together, and which holdings carry the risk.

The portfolio is the deployment's current holdings and cash. Its history is what those
holdings would have been worth on each of the last ``lookback`` days of daily closes (from the
1-day rollup for minute-bar symbols), so VaR and CVaR answer "what could today's book lose in a
day". Historical and parametric (normal) VaR/CVaR come from :mod:`prism.backtest.metrics`; they are
reported as positive losses, as fractions of equity and in money. Contributions to risk are the
Euler decomposition of the portfolio's volatility: weight x (covariance x weights) / volatility,
which adds up to the volatility.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from prism.backtest import metrics
from prism.monitoring.positions import positions
from prism.monitoring.prices import daily_closes
from prism.monitoring.sql import read_frame

CONFIDENCES = (0.95, 0.99)
LOOKBACK_DAYS = 365
"""Calendar days of daily closes behind VaR, correlation and contributions (~252 sessions)."""
MIN_OBSERVATIONS = 20


def portfolio_values(quantities: pd.Series, cash: float, closes: pd.DataFrame) -> pd.Series:
    """Return cash plus ``quantities`` (index symbol) valued at each row of ``closes`` (index
    time, a column per symbol; gaps carried forward, rows before every symbol has a price
    dropped)."""
    prices = closes[quantities.index].ffill().dropna()
    return cash + prices.mul(quantities, axis=1).sum(axis=1)


def value_at_risk_table(values: pd.Series, equity: float) -> pd.DataFrame:
    """Return method (historical, parametric), confidence, var and cvar (positive one-day
    losses as fractions), var_money and cvar_money (times ``equity``), one row per pair."""
    rows = []
    for confidence in CONFIDENCES:
        cutoff = 1.0 - confidence
        pairs = {
            "historical": (
                metrics.value_at_risk(values, cutoff),
                metrics.conditional_value_at_risk(values, cutoff),
            ),
            "parametric": (
                metrics.parametric_value_at_risk(values, cutoff),
                metrics.parametric_conditional_value_at_risk(values, cutoff),
            ),
        }
        for method, (var, cvar) in pairs.items():
            rows.append(
                {
                    "method": method,
                    "confidence": confidence,
                    "var": -var,
                    "cvar": -cvar,
                    "var_money": -var * equity,
                    "cvar_money": -cvar * equity,
                }
            )
    return pd.DataFrame(rows).sort_values(["method", "confidence"], ignore_index=True)


def risk_contributions(weights: pd.Series, returns: pd.DataFrame) -> pd.DataFrame:
    """Return symbol, weight, volatility (one-day, of the symbol), contribution (to the
    portfolio's one-day volatility; the column sums to it) and share (of it), largest share
    first. ``weights`` is indexed by symbol; ``returns`` has a column per symbol."""
    symbols = list(weights.index)
    cov = returns[symbols].cov().to_numpy()
    w = weights.to_numpy(dtype=float)
    sigma = float(np.sqrt(w @ cov @ w))
    contribution = w * (cov @ w) / sigma if sigma > 0 else np.zeros_like(w)
    frame = pd.DataFrame(
        {
            "symbol": symbols,
            "weight": w,
            "volatility": np.sqrt(np.diag(cov)),
            "contribution": contribution,
            "share": contribution / sigma if sigma > 0 else np.zeros_like(w),
        }
    )
    return frame.sort_values("share", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class RiskReport:
    """The Risk page's figures for one deployment."""

    deployment: str
    equity: float
    observations: int
    var: pd.DataFrame
    correlation: pd.DataFrame
    contributors: pd.DataFrame
    measured: dict[str, float]


def risk_report(
    engine: Engine, deployment: str, lookback_days: int = LOOKBACK_DAYS, raw: bool = False
) -> RiskReport | None:
    """Return the risk of the deployment's current book, or None when it holds nothing or
    its holdings have fewer than :data:`MIN_OBSERVATIONS` common daily closes. ``raw`` reads
    the closes from 1m bars instead of the rollup (the benchmark's peer)."""
    book = positions(engine, deployment)
    book = book[(book["quantity"] != 0) & book["last_price"].notna()]
    if book.empty:
        return None
    cash = float(
        read_frame(engine, "SELECT cash FROM trading.accounts WHERE deployment = :d", d=deployment)[
            "cash"
        ].iloc[0]
    )
    quantities = book.set_index("symbol")["quantity"].astype(float)
    end = book["price_time"].max()
    closes = daily_closes(
        engine,
        list(quantities.index),
        start=(end - timedelta(days=lookback_days)).to_pydatetime(),
        end=end.to_pydatetime(),
        raw=raw,
    )
    if any(s not in closes for s in quantities.index):
        return None
    values = portfolio_values(quantities, cash, closes)
    returns = closes[quantities.index].ffill().pct_change().dropna()
    if len(returns) < MIN_OBSERVATIONS:
        return None
    market = book.set_index("symbol")["market_value"].astype(float)
    equity = cash + float(market.sum())
    weights = market / equity
    var = value_at_risk_table(values, equity)
    return RiskReport(
        deployment=deployment,
        equity=equity,
        observations=len(returns),
        var=var,
        correlation=returns.corr(),
        contributors=risk_contributions(weights, returns),
        measured=_measured(book, equity, _drawdown(engine, deployment)),
    )


def _measured(book: pd.DataFrame, equity: float, drawdown: float) -> dict[str, float]:
    value = book["market_value"].astype(float)
    return {
        "max_gross_exposure": float(value.abs().sum()) / equity,
        "max_net_exposure": abs(float(value.sum())) / equity,
        "max_position_pct": float(value.abs().max()) / equity,
        "max_drawdown": drawdown,
    }


MEASURED_KEYS = ("max_gross_exposure", "max_net_exposure", "max_position_pct", "max_drawdown")
"""Limits of :mod:`prism.live.risk` this module measures itself (fractions of equity; drawdown from
the deployment's peak snapshot equity) when the runner's newest risk snapshot lacks them."""


def _drawdown(engine: Engine, deployment: str) -> float:
    """Return the fall of the newest snapshot's equity from the highest one (>= 0)."""
    frame = read_frame(
        engine,
        "SELECT (SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
        "ORDER BY time DESC LIMIT 1) AS last, max(equity) AS peak "
        "FROM trading.portfolio_snapshots WHERE deployment = :d",
        d=deployment,
    ).iloc[0]
    if pd.isna(frame["peak"]) or not frame["peak"]:
        return float("nan")
    return float(1.0 - frame["last"] / frame["peak"])


def limit_utilization(
    engine: Engine, deployment: str, measured: dict[str, float] | None = None
) -> pd.DataFrame:
    """Return one row per ``config.risk_limits`` entry: key, description, limit, value (the
    measured quantity, when known), utilization (value / limit; 1.0 = at the limit) and
    source: the deployment's newest ``trading.risk_snapshots.limit_utilization`` when it has
    the key, else ``measured[key] / limit`` computed here, else none."""
    limits = read_frame(
        engine, "SELECT key, description, value AS limit FROM config.risk_limits ORDER BY key"
    )
    snapshot = read_frame(
        engine,
        "SELECT time, limit_utilization FROM trading.risk_snapshots WHERE deployment = :d "
        "ORDER BY time DESC LIMIT 1",
        d=deployment,
    )
    stored: dict[str, Any] = (
        dict(snapshot["limit_utilization"].iloc[0]) if not snapshot.empty else {}
    )
    measured = measured or {}
    values, utilization, source = [], [], []
    for key, limit in zip(limits["key"], limits["limit"], strict=True):
        value = measured.get(key, float("nan"))
        values.append(value)
        if key in stored:
            utilization.append(_utilization(stored[key]))
            source.append("runner snapshot")
        elif key in measured and limit:
            utilization.append(value / float(limit))
            source.append("computed here")
        else:
            utilization.append(float("nan"))
            source.append("not measured")
    limits["value"], limits["utilization"], limits["source"] = values, utilization, source
    return limits


def _utilization(stored: Any) -> float:
    """Return a stored utilization: a number, or an object with ``utilization``."""
    if isinstance(stored, dict):
        stored = stored.get("utilization", float("nan"))
    try:
        return float(stored)
    except (TypeError, ValueError):
        return float("nan")
