"""The Orders and fills page: orders and fills filtered by date, symbol, status and
deployment, with slippage against the decision price and commission.

The decision price is the close the live cycle decided at (``audit.decisions.signals.close``
of the order's decision). Slippage is signed so that a positive value is a cost: a buy filled
above, or a sell filled below, that price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from prism.monitoring.sql import read_frame


@dataclass(frozen=True)
class OrderFilter:
    """What the page filters on; empty lists and None mean "all"."""

    start: date | None = None
    end: date | None = None
    symbols: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    limit: int = 1000

    def params(self) -> dict[str, object]:
        """Return the SQL parameters of the filter (dates as UTC day bounds, end inclusive)."""
        return {
            "start": datetime.combine(self.start, time(), UTC) if self.start else None,
            "end": datetime.combine(self.end + timedelta(days=1), time(), UTC)
            if self.end
            else None,
            "symbols": list(self.symbols) or None,
            "statuses": list(self.statuses) or None,
            "deployments": list(self.deployments) or None,
            "n": self.limit,
        }


_WHERE = """
    (CAST(:start AS timestamptz) IS NULL OR {time} >= CAST(:start AS timestamptz))
    AND (CAST(:end AS timestamptz) IS NULL OR {time} < CAST(:end AS timestamptz))
    AND (CAST(:symbols AS text[]) IS NULL OR {alias}.symbol = ANY(CAST(:symbols AS text[])))
    AND (CAST(:deployments AS text[]) IS NULL
         OR {alias}.deployment = ANY(CAST(:deployments AS text[])))
    AND (CAST(:statuses AS text[]) IS NULL OR o.status = ANY(CAST(:statuses AS text[])))
"""

_ORDERS = f"""
SELECT o.decided_at, o.deployment, o.symbol, o.side, o.quantity, o.status, o.filled_quantity,
       CAST(d.signals ->> 'close' AS double precision) AS decision_price,
       o.average_fill_price, o.commission, o.model_name, o.model_version, o.client_order_id
FROM trading.orders o
LEFT JOIN audit.decisions d
       ON d.client_order_id = o.client_order_id AND d.deployment = o.deployment
WHERE {_WHERE.format(time="o.decided_at", alias="o")}
ORDER BY o.decided_at DESC, o.deployment, o.symbol
LIMIT :n
"""

_FILLS = f"""
SELECT f.time, f.deployment, f.symbol, f.side, f.quantity, f.price, f.commission,
       f.price * f.quantity AS notional, o.status, o.client_order_id, f.fill_id
FROM trading.fills f JOIN trading.orders o ON o.id = f.order_id
WHERE {_WHERE.format(time="o.decided_at", alias="f")}
ORDER BY f.time DESC, f.deployment, f.symbol
LIMIT :n
"""


def orders(engine: Engine, where: OrderFilter) -> pd.DataFrame:
    """Return the newest orders matching ``where``: decided_at (UTC), deployment, symbol,
    side, quantity, status, filled_quantity, decision_price, average_fill_price,
    slippage_bps (positive = cost), slippage_cost (money), commission, model_name,
    model_version, client_order_id."""
    frame = read_frame(engine, _ORDERS, **where.params())
    sign = frame["side"].map({"buy": 1.0, "sell": -1.0}).astype(float)
    move = frame["average_fill_price"].astype(float) - frame["decision_price"].astype(float)
    frame["slippage_bps"] = sign * move / frame["decision_price"] * 1e4
    frame["slippage_cost"] = sign * move * frame["filled_quantity"].astype(float)
    ordered = [
        "decided_at",
        "deployment",
        "symbol",
        "side",
        "quantity",
        "status",
        "filled_quantity",
        "decision_price",
        "average_fill_price",
        "slippage_bps",
        "slippage_cost",
        "commission",
        "model_name",
        "model_version",
        "client_order_id",
    ]
    return frame[ordered]


def fills(engine: Engine, where: OrderFilter) -> pd.DataFrame:
    """Return the newest fills matching ``where`` (dates and status filter on their order's
    decision time and status, so a fill the day after a decision shows with its order):
    time (UTC), deployment, symbol, side, quantity, price, commission, notional, status,
    client_order_id, fill_id."""
    return read_frame(engine, _FILLS, **where.params())


@dataclass(frozen=True)
class CostSummary:
    """What the filtered orders cost: commission, slippage in money and in basis points of
    the filled notional, and how many orders filled (fully or partly)."""

    orders: int
    filled: int
    notional: float
    commission: float
    slippage_cost: float
    slippage_bps: float


def cost_summary(frame: pd.DataFrame) -> CostSummary:
    """Return the costs of :func:`orders`' frame; slippage in bp is notional-weighted."""
    filled = frame[frame["filled_quantity"].astype(float) > 0]
    notional = float((filled["filled_quantity"] * filled["average_fill_price"]).sum())
    slip = float(filled["slippage_cost"].sum())
    return CostSummary(
        orders=len(frame),
        filled=len(filled),
        notional=notional,
        commission=float(frame["commission"].astype(float).sum()),
        slippage_cost=slip,
        slippage_bps=slip / notional * 1e4 if notional else float("nan"),
    )


@dataclass(frozen=True)
class FilterChoices:
    """The values the page's filters offer."""

    deployments: list[str]
    symbols: list[str]
    statuses: list[str]
    first: date | None
    last: date | None


def filter_choices(engine: Engine) -> FilterChoices:
    """Return every deployment, symbol and status seen in orders, and their date span (UTC)."""
    frame = read_frame(
        engine,
        "SELECT array_agg(DISTINCT deployment) AS deployments, "
        "array_agg(DISTINCT symbol) AS symbols, array_agg(DISTINCT status) AS statuses, "
        "min(decided_at) AS first, max(decided_at) AS last FROM trading.orders",
    )
    row = frame.iloc[0]

    def listed(value: object) -> list[str]:
        return sorted(value) if isinstance(value, list) else []

    def day(value: Any) -> date | None:
        return None if value is None or pd.isna(value) else pd.Timestamp(value).date()

    return FilterChoices(
        listed(row["deployments"]),
        listed(row["symbols"]),
        listed(row["statuses"]),
        day(row["first"]),
        day(row["last"]),
    )
