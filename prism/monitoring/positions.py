"""Positions of every deployment valued at the newest prices, and their totals.

Equity here is the account's cash plus its positions at those prices, so the weights of a
deployment's positions and its cash add up to one.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from prism.monitoring.prices import last_prices
from prism.monitoring.sql import read_frame

_POSITIONS = (
    "SELECT p.deployment, p.symbol, p.quantity, p.average_price, p.realized_pnl, a.cash "
    "FROM trading.positions p JOIN trading.accounts a USING (deployment) "
    "WHERE (CAST(:deployment AS text) IS NULL OR p.deployment = :deployment) "
    "ORDER BY p.deployment, p.symbol"
)

COLUMNS = [
    "deployment",
    "symbol",
    "quantity",
    "average_price",
    "last_price",
    "price_time",
    "market_value",
    "weight",
    "unrealized_pnl",
    "realized_pnl",
]


def positions(
    engine: Engine, deployment: str | None = None, as_of: datetime | None = None
) -> pd.DataFrame:
    """Return one row per position (also closed ones, quantity 0, for their realized P&L):
    deployment, symbol, quantity, average_price, last_price, price_time (UTC), market_value,
    weight (of the deployment's equity), unrealized_pnl, realized_pnl; all money float64."""
    frame = read_frame(engine, _POSITIONS, deployment=deployment)
    if frame.empty:
        return pd.DataFrame({c: [] for c in COLUMNS})
    prices = last_prices(engine, sorted(frame["symbol"].unique()), as_of)
    frame = frame.merge(
        prices.rename(columns={"close": "last_price", "time": "price_time"}),
        on="symbol",
        how="left",
    )
    frame["market_value"] = frame["quantity"] * frame["last_price"]
    frame["unrealized_pnl"] = (frame["last_price"] - frame["average_price"]) * frame["quantity"]
    invested = frame.groupby("deployment")["market_value"].transform("sum")
    frame["weight"] = frame["market_value"] / (frame["cash"] + invested)
    return frame[COLUMNS].reset_index(drop=True)


def totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Return, from :func:`positions`' frame, one row per deployment and a last row
    ``total``: deployment, market_value, gross (sum of absolute market values),
    unrealized_pnl, realized_pnl, open_positions."""
    held = frame.assign(
        gross=frame["market_value"].abs(), open_positions=(frame["quantity"] != 0).astype(int)
    )
    columns = ["market_value", "gross", "unrealized_pnl", "realized_pnl", "open_positions"]
    per = held.groupby("deployment", as_index=False)[columns].sum()
    total = pd.DataFrame([{"deployment": "total", **per[columns].sum().to_dict()}])
    return pd.concat([per, total], ignore_index=True)


_SIGNALS = """
SELECT s.deployment, s.time, s.symbol, s.strategy, s.model_name, s.model_version, s.value,
       s.target_weight
FROM trading.signals s
JOIN (SELECT deployment, max(time) AS time FROM trading.signals
      WHERE CAST(:deployment AS text) IS NULL OR deployment = :deployment
      GROUP BY deployment) n USING (deployment, time)
ORDER BY s.deployment, s.symbol
"""

SIGNAL_COLUMNS = [
    "deployment",
    "time",
    "symbol",
    "strategy",
    "model_name",
    "model_version",
    "value",
    "target_weight",
]


def latest_signals(engine: Engine, deployment: str | None = None) -> pd.DataFrame:
    """Return the target weights of each deployment's newest cycle from ``trading.signals``
    (what the runner aims to hold, beside what it holds): deployment, time (UTC), symbol,
    strategy, model_name, model_version, value (the strategy's weight) and target_weight
    (after the leverage cap); empty when no cycle recorded any."""
    frame = read_frame(engine, _SIGNALS, deployment=deployment)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame[SIGNAL_COLUMNS]
