"""The trading ledger in PostgreSQL: accounts, orders, fills, positions, snapshots, decisions.

Money is exact: quantities, prices, cash and commissions are ``Decimal`` here and ``numeric``
in the database. Every write is idempotent by a natural key (the client order id, the fill id,
(deployment, time) for snapshots and decisions), so a crashed or repeated cycle never
duplicates an order, a fill or a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from prism.errors import InvariantViolated

DEPLOYMENT_TABLES = (
    "audit.decisions",
    "trading.risk_snapshots",
    "trading.paper_fills",
    "trading.paper_orders",
    "trading.fills",
    "trading.orders",
    "trading.positions",
    "trading.portfolio_snapshots",
    "trading.accounts",
)
"""Every table holding a deployment's state, children before parents (safe deletion order)."""

PRICE_STEP = Decimal("0.000001")
CASH_STEP = Decimal("0.0001")


def to_decimal(value: float, step: Decimal = PRICE_STEP) -> Decimal:
    """Return ``value`` as a Decimal rounded to ``step``."""
    return Decimal(repr(value)).quantize(step)


@dataclass(frozen=True)
class OrderRow:
    """An order as the ledger stores it."""

    client_order_id: str
    deployment: str
    symbol: str
    side: str
    quantity: Decimal
    strategy: str
    model_name: str | None
    model_version: str | None
    decided_at: datetime
    broker: str


@dataclass(frozen=True)
class FillRow:
    """A fill of (part of) an order."""

    fill_id: str
    client_order_id: str
    time: datetime
    quantity: Decimal
    price: Decimal
    commission: Decimal


def ensure_account(engine: Engine, deployment: str, capital: Decimal) -> None:
    """Open the paper account ``deployment`` with ``capital`` unless it exists."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.accounts (deployment, initial_capital, cash) "
                "VALUES (:d, :c, :c) ON CONFLICT (deployment) DO NOTHING"
            ),
            {"d": deployment, "c": capital},
        )


def cash(conn: Connection, deployment: str) -> Decimal:
    """Return the account's cash; an unknown account is an invariant violation."""
    value = conn.execute(
        text("SELECT cash FROM trading.accounts WHERE deployment = :d"), {"d": deployment}
    ).scalar()
    if value is None:
        raise InvariantViolated(f"no trading account for deployment {deployment!r}")
    return Decimal(value)


def holdings(conn: Connection, deployment: str) -> dict[str, Decimal]:
    """Return the non-zero quantity held per symbol."""
    rows = conn.execute(
        text(
            "SELECT symbol, quantity FROM trading.positions WHERE deployment = :d AND quantity <> 0"
        ),
        {"d": deployment},
    )
    return {symbol: Decimal(quantity) for symbol, quantity in rows}


def insert_order(
    conn: Connection, order: OrderRow, broker_order_id: str | None, status: str = "sent"
) -> bool:
    """Record ``order`` (as ``sent``, or as ``pending`` before it goes to the broker); return
    False when its client order id already exists."""
    row = conn.execute(
        text(
            "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, quantity, "
            "status, broker, broker_order_id, strategy, model_name, model_version, decided_at) "
            "VALUES (:client_order_id, :deployment, :symbol, :side, :quantity, :status, :broker, "
            ":broker_order_id, :strategy, :model_name, :model_version, :decided_at) "
            "ON CONFLICT (client_order_id) DO NOTHING RETURNING id"
        ),
        {**order.__dict__, "broker_order_id": broker_order_id, "status": status},
    ).scalar()
    return row is not None


def pending_orders(conn: Connection, deployment: str) -> list[OrderRow]:
    """Return the deployment's orders recorded but not yet confirmed sent, oldest first."""
    rows = conn.execute(
        text(
            "SELECT client_order_id, deployment, symbol, side, quantity, strategy, model_name, "
            "model_version, decided_at, broker FROM trading.orders "
            "WHERE deployment = :d AND status = 'pending' ORDER BY decided_at, id"
        ),
        {"d": deployment},
    )
    return [OrderRow(*row) for row in rows]


def set_order_status(
    conn: Connection, client_order_id: str, status: str, broker_order_id: str | None = None
) -> None:
    """Move an order to ``status`` through the order state machine (an illegal move raises)."""
    from prism.order_states import transition

    current = conn.execute(
        text("SELECT status FROM trading.orders WHERE client_order_id = :c FOR UPDATE"),
        {"c": client_order_id},
    ).scalar()
    if current is None:
        raise InvariantViolated(f"no order {client_order_id} to move to {status}")
    conn.execute(
        text(
            "UPDATE trading.orders SET status = :s, updated_at = now(), "
            "broker_order_id = COALESCE(:b, broker_order_id) WHERE client_order_id = :c"
        ),
        {"s": transition(current, status), "b": broker_order_id, "c": client_order_id},
    )


def open_orders(conn: Connection, deployment: str) -> list[OrderRow]:
    """Return the deployment's orders still waiting for a fill, oldest first."""
    rows = conn.execute(
        text(
            "SELECT client_order_id, deployment, symbol, side, quantity - filled_quantity, "
            "strategy, model_name, model_version, decided_at, broker FROM trading.orders "
            "WHERE deployment = :d AND status IN ('sent', 'partial') ORDER BY decided_at, id"
        ),
        {"d": deployment},
    )
    return [OrderRow(*row) for row in rows]


def apply_fill(conn: Connection, deployment: str, side: str, symbol: str, fill: FillRow) -> bool:
    """Record ``fill`` and move cash, position and order with it, all or nothing.

    Returns False (and changes nothing) when the fill id was already recorded.
    """
    order = conn.execute(
        text(
            "SELECT id, quantity, filled_quantity FROM trading.orders "
            "WHERE client_order_id = :c FOR UPDATE"
        ),
        {"c": fill.client_order_id},
    ).one_or_none()
    if order is None:
        raise InvariantViolated(
            f"fill {fill.fill_id} refers to unknown order {fill.client_order_id}"
        )
    inserted = conn.execute(
        text(
            "INSERT INTO trading.fills (fill_id, order_id, deployment, time, symbol, side, "
            "quantity, price, commission) VALUES (:fill_id, :order_id, :deployment, :time, "
            ":symbol, :side, :quantity, :price, :commission) "
            "ON CONFLICT (fill_id) DO NOTHING RETURNING id"
        ),
        {
            **fill.__dict__,
            "order_id": order.id,
            "deployment": deployment,
            "symbol": symbol,
            "side": side,
        },
    ).scalar()
    if inserted is None:
        return False
    signed = fill.quantity if side == "buy" else -fill.quantity
    filled = Decimal(order.filled_quantity) + fill.quantity
    if filled > Decimal(order.quantity):
        raise InvariantViolated(
            f"order {fill.client_order_id} overfilled: {filled} > {order.quantity}"
        )
    conn.execute(
        text(
            "UPDATE trading.orders SET filled_quantity = :filled, "
            "average_fill_price = (COALESCE(average_fill_price * filled_quantity, 0) "
            "                      + :price * :qty) / :filled, "
            "commission = commission + :commission, updated_at = now(), "
            "status = CASE WHEN :filled = quantity THEN 'filled' ELSE 'partial' END "
            "WHERE id = :id"
        ),
        {
            "filled": filled,
            "price": fill.price,
            "qty": fill.quantity,
            "commission": fill.commission,
            "id": order.id,
        },
    )
    conn.execute(
        text(
            "UPDATE trading.accounts SET cash = cash - :spent, updated_at = now() "
            "WHERE deployment = :d"
        ),
        {"spent": (signed * fill.price + fill.commission).quantize(CASH_STEP), "d": deployment},
    )
    _move_position(conn, deployment, symbol, signed, fill.price, fill.commission)
    return True


def _move_position(
    conn: Connection, deployment: str, symbol: str, signed: Decimal, price: Decimal, fee: Decimal
) -> None:
    row = conn.execute(
        text(
            "SELECT quantity, average_price, realized_pnl FROM trading.positions "
            "WHERE deployment = :d AND symbol = :s FOR UPDATE"
        ),
        {"d": deployment, "s": symbol},
    ).one_or_none()
    held, average, realized = (
        (Decimal(row.quantity), Decimal(row.average_price), Decimal(row.realized_pnl))
        if row
        else (Decimal(0), Decimal(0), Decimal(0))
    )
    new_held = held + signed
    if held == 0 or (held > 0) == (signed > 0):
        average = (held * average + signed * price) / new_held if new_held else Decimal(0)
    else:
        closed = min(abs(signed), abs(held))
        realized += closed * (price - average) * (1 if held > 0 else -1)
        if new_held == 0:
            average = Decimal(0)
        elif (new_held > 0) != (held > 0):
            average = price
    realized -= fee
    conn.execute(
        text(
            "INSERT INTO trading.positions (deployment, symbol, quantity, average_price, "
            "realized_pnl, updated_at) VALUES (:d, :s, :q, :a, :r, now()) "
            "ON CONFLICT (deployment, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, "
            "average_price = EXCLUDED.average_price, realized_pnl = EXCLUDED.realized_pnl, "
            "updated_at = now()"
        ),
        {
            "d": deployment,
            "s": symbol,
            "q": new_held,
            "a": average.quantize(PRICE_STEP),
            "r": realized.quantize(CASH_STEP),
        },
    )


def cancel_rest(conn: Connection, client_order_id: str) -> None:
    """Cancel what is left of an order (a buy the cash could not fully pay for)."""
    conn.execute(
        text(
            "UPDATE trading.orders SET status = 'cancelled', updated_at = now() "
            "WHERE client_order_id = :c AND status IN ('sent', 'partial')"
        ),
        {"c": client_order_id},
    )


def record_decision(conn: Connection, decision: dict[str, Any]) -> None:
    """Write an audit decision; a repeated (deployment, time, symbol, type) is ignored."""
    conn.execute(
        text(
            "INSERT INTO audit.decisions (time, deployment, decision_type, symbol, model_name, "
            "model_version, signals, risk_check, action, reasoning, client_order_id) VALUES "
            "(:time, :deployment, :decision_type, :symbol, :model_name, :model_version, "
            "CAST(:signals AS jsonb), CAST(:risk_check AS jsonb), :action, :reasoning, "
            ":client_order_id) ON CONFLICT DO NOTHING"
        ),
        {
            **decision,
            "signals": json.dumps(decision["signals"]),
            "risk_check": json.dumps(decision["risk_check"]),
        },
    )


def last_cycle(conn: Connection, deployment: str) -> tuple[datetime, Decimal] | None:
    """Return the newest bar a cycle of ``deployment`` got to (the later of its newest
    snapshot and its newest fill: a fill is booked by the cycle of the bar it happened in) and
    the equity of its newest snapshot; None before the first cycle."""
    row = conn.execute(
        text(
            "SELECT greatest((SELECT max(time) FROM trading.portfolio_snapshots "
            "WHERE deployment = :d), (SELECT max(time) FROM trading.fills WHERE deployment = :d)), "
            "(SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
            "ORDER BY time DESC LIMIT 1)"
        ),
        {"d": deployment},
    ).one()
    return (row[0], row[1]) if row[0] is not None else None


def record_snapshot(
    conn: Connection, deployment: str, time: datetime, marks: dict[str, Decimal]
) -> dict[str, Decimal]:
    """Write the portfolio's value at ``time`` from ``marks`` (price per symbol); return it."""
    held = holdings(conn, deployment)
    missing = sorted(set(held) - set(marks))
    if missing:
        raise InvariantViolated(f"no price to value {', '.join(missing)} at {time}")
    values = {s: q * marks[s] for s, q in held.items()}
    snapshot = {
        "cash": cash(conn, deployment),
        "market_value": sum(values.values(), Decimal(0)),
        "gross_exposure": sum((abs(v) for v in values.values()), Decimal(0)),
        "net_exposure": sum(values.values(), Decimal(0)),
    }
    snapshot["equity"] = snapshot["cash"] + snapshot["market_value"]
    snapshot = {k: v.quantize(CASH_STEP) for k, v in snapshot.items()}
    conn.execute(
        text(
            "INSERT INTO trading.portfolio_snapshots (time, deployment, cash, market_value, "
            "equity, gross_exposure, net_exposure) VALUES (:time, :d, :cash, :market_value, "
            ":equity, :gross_exposure, :net_exposure) ON CONFLICT (deployment, time) DO UPDATE "
            "SET cash = EXCLUDED.cash, market_value = EXCLUDED.market_value, "
            "equity = EXCLUDED.equity, gross_exposure = EXCLUDED.gross_exposure, "
            "net_exposure = EXCLUDED.net_exposure"
        ),
        {"time": time, "d": deployment, **snapshot},
    )
    return snapshot
