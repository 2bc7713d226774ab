"""Orders, fills, positions and decisions in the ledger (accounts and snapshots live in
:mod:`.accounts`).

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

from sqlalchemy import Connection, text

from prism.core.errors import InvariantViolated
from prism.ledger.accounts import CASH_STEP, PRICE_STEP
from prism.ledger.order_states import transition


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


def working_quantities(conn: Connection, deployment: str) -> dict[str, Decimal]:
    """Return, per symbol, the signed quantity still to fill of the deployment's orders that
    may be at the broker (``pending``, ``sent``, ``partial``): what its position becomes once
    they fill. Sizing against holdings alone would order again what a slow broker has not
    filled yet."""
    rows = conn.execute(
        text(
            "SELECT symbol, sum(CASE WHEN side = 'buy' THEN 1 ELSE -1 END "
            "* (quantity - filled_quantity)) FROM trading.orders "
            "WHERE deployment = :d AND status IN ('pending', 'sent', 'partial') GROUP BY symbol"
        ),
        {"d": deployment},
    )
    return {symbol: Decimal(quantity) for symbol, quantity in rows if quantity}


def apply_fill(conn: Connection, deployment: str, side: str, symbol: str, fill: FillRow) -> bool:
    """Record ``fill`` and move cash, position and order with it, all or nothing.

    Returns False (and changes nothing) when the fill id was already recorded.
    """
    return apply_fills(conn, deployment, [(side, symbol, fill)]) == 1


def cancel_rest(conn: Connection, client_order_id: str) -> None:
    """Cancel what is left of an order (a buy the cash could not fully pay for)."""
    conn.execute(
        text(
            "UPDATE trading.orders SET status = 'cancelled', updated_at = now() "
            "WHERE client_order_id = :c AND status IN ('sent', 'partial')"
        ),
        {"c": client_order_id},
    )


def _json(value: Any) -> Any:
    """JSON form of the values ledger rows carry (timestamps, exact decimals)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} as JSON")


def _records(rows: list[dict[str, Any]]) -> str:
    """Return ``rows`` as a JSON array for ``jsonb_to_recordset``, each numbered ``n``."""
    return json.dumps([{**row, "n": k} for k, row in enumerate(rows)], default=_json)


def insert_orders(
    conn: Connection, orders: list[OrderRow], status: str = "pending"
) -> list[OrderRow]:
    """Record ``orders`` in one statement, in their order (as ``pending`` before they go to the
    broker); return those recorded, leaving out client order ids that already exist."""
    if not orders:
        return []
    inserted = set(
        conn.execute(
            text(
                "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, quantity, "
                "status, broker, strategy, model_name, model_version, decided_at) "
                "SELECT r.client_order_id, r.deployment, r.symbol, r.side, r.quantity, :status, "
                "r.broker, r.strategy, r.model_name, r.model_version, r.decided_at "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r("
                "client_order_id text, deployment text, symbol text, side text, quantity numeric, "
                "broker text, strategy text, model_name text, model_version text, "
                "decided_at timestamptz, n bigint) ORDER BY r.n "
                "ON CONFLICT (client_order_id) DO NOTHING RETURNING client_order_id"
            ),
            {"rows": _records([o.__dict__ for o in orders]), "status": status},
        ).scalars()
    )
    return [o for o in orders if o.client_order_id in inserted]


def record_decisions(conn: Connection, decisions: list[dict[str, Any]]) -> None:
    """Write audit decisions in one statement; a repeated (deployment, time, symbol, type)
    is ignored, as :func:`record_decision` ignores it."""
    if not decisions:
        return
    conn.execute(
        text(
            "INSERT INTO audit.decisions (time, deployment, decision_type, symbol, model_name, "
            "model_version, signals, risk_check, action, reasoning, client_order_id) "
            "SELECT r.time, r.deployment, r.decision_type, r.symbol, r.model_name, "
            "r.model_version, r.signals, r.risk_check, r.action, r.reasoning, r.client_order_id "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(time timestamptz, "
            "deployment text, decision_type text, symbol text, model_name text, "
            "model_version text, signals jsonb, risk_check jsonb, action text, reasoning text, "
            "client_order_id text, n bigint) ORDER BY r.n ON CONFLICT DO NOTHING"
        ),
        {"rows": _records(decisions)},
    )


def record_signals(conn: Connection, signals: list[dict[str, Any]]) -> None:
    """Write one cycle's signals to ``trading.signals`` (time, deployment, symbol, strategy,
    model_name, model_version, value: the strategy's weight, target_weight: after the leverage
    cap) in one statement; a cycle run again for the same bar overwrites its rows."""
    if not signals:
        return
    conn.execute(
        text(
            "INSERT INTO trading.signals (time, deployment, symbol, strategy, model_name, "
            "model_version, value, target_weight) "
            "SELECT r.time, r.deployment, r.symbol, r.strategy, r.model_name, r.model_version, "
            "r.value, r.target_weight FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r("
            "time timestamptz, deployment text, symbol text, strategy text, model_name text, "
            "model_version text, value double precision, target_weight double precision, "
            "n bigint) ORDER BY r.n "
            "ON CONFLICT (deployment, symbol, time) DO UPDATE SET strategy = EXCLUDED.strategy, "
            "model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, "
            "value = EXCLUDED.value, target_weight = EXCLUDED.target_weight, created_at = now()"
        ),
        {"rows": _records(signals)},
    )


def set_order_statuses(conn: Connection, changes: list[tuple[str, str, str | None]]) -> None:
    """Move each order (client order id, status, broker order id or None) through the order
    state machine, all in two statements; an illegal move or an unknown order raises before
    anything changes."""

    if not changes:
        return
    ids = [client_order_id for client_order_id, _, _ in changes]
    current: dict[str, str] = {
        str(c): str(s)
        for c, s in conn.execute(
            text(
                "SELECT client_order_id, status FROM trading.orders "
                "WHERE client_order_id = ANY(:c) ORDER BY id FOR UPDATE"
            ),
            {"c": ids},
        )
    }
    rows = []
    for client_order_id, status, broker_order_id in changes:
        if client_order_id not in current:
            raise InvariantViolated(f"no order {client_order_id} to move to {status}")
        current[client_order_id] = transition(current[client_order_id], status)
        rows.append({"c": client_order_id, "s": status, "b": broker_order_id})
    conn.execute(
        text(
            "UPDATE trading.orders o SET status = r.s, updated_at = now(), "
            "broker_order_id = COALESCE(r.b, o.broker_order_id) "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(c text, s text, b text) "
            "WHERE o.client_order_id = r.c"
        ),
        {"rows": _records(rows)},
    )


def apply_fills(conn: Connection, deployment: str, fills: list[tuple[str, str, FillRow]]) -> int:
    """Record each (side, symbol, fill) and move cash, positions and orders with them, all or
    nothing, in a handful of statements whatever the number of fills; the result is exactly that
    of :func:`apply_fill` called for each in turn. Fill ids already recorded change nothing.
    Returns how many fills were new."""
    if not fills:
        return 0
    ids = sorted({fill.client_order_id for _, _, fill in fills})
    orders = {
        row.client_order_id: row
        for row in conn.execute(
            text(
                "SELECT id, client_order_id, quantity, filled_quantity FROM trading.orders "
                "WHERE client_order_id = ANY(:c) ORDER BY id FOR UPDATE"
            ),
            {"c": ids},
        )
    }
    for _, _, fill in fills:
        if fill.client_order_id not in orders:
            raise InvariantViolated(
                f"fill {fill.fill_id} refers to unknown order {fill.client_order_id}"
            )
    rows = [
        {
            **fill.__dict__,
            "order_id": orders[fill.client_order_id].id,
            "symbol": symbol,
            "side": side,
        }
        for side, symbol, fill in fills
    ]
    inserted = set(
        conn.execute(
            text(
                "INSERT INTO trading.fills (fill_id, order_id, deployment, time, symbol, side, "
                "quantity, price, commission) SELECT r.fill_id, r.order_id, :deployment, r.time, "
                "r.symbol, r.side, r.quantity, r.price, r.commission "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(fill_id text, "
                "order_id bigint, time timestamptz, symbol text, side text, quantity numeric, "
                "price numeric, commission numeric, n bigint) ORDER BY r.n "
                "ON CONFLICT (fill_id) DO NOTHING RETURNING fill_id"
            ),
            {"rows": _records(rows), "deployment": deployment},
        ).scalars()
    )
    new = []
    for side, symbol, fill in fills:
        if fill.fill_id in inserted:
            inserted.discard(fill.fill_id)
            new.append((side, symbol, fill))
    if not new:
        return 0
    _book_orders(conn, orders, [fill for _, _, fill in new])
    spent = sum(
        (
            (
                (fill.quantity if side == "buy" else -fill.quantity) * fill.price + fill.commission
            ).quantize(CASH_STEP)
            for side, _, fill in new
        ),
        Decimal(0),
    )
    conn.execute(
        text(
            "UPDATE trading.accounts SET cash = cash - :spent, updated_at = now() "
            "WHERE deployment = :d"
        ),
        {"spent": spent, "d": deployment},
    )
    _move_positions(conn, deployment, new)
    return len(new)


def _book_orders(conn: Connection, orders: dict[str, Any], fills: list[FillRow]) -> None:
    """Add ``fills`` to their orders (filled quantity, average price, commission, status), one
    statement per round of at most one fill per order, so averages round as one by one."""
    filled = {cid: Decimal(row.filled_quantity) for cid, row in orders.items()}
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for fill in fills:
        order = orders[fill.client_order_id]
        filled[fill.client_order_id] += fill.quantity
        if filled[fill.client_order_id] > Decimal(order.quantity):
            raise InvariantViolated(
                f"order {fill.client_order_id} overfilled: "
                f"{filled[fill.client_order_id]} > {order.quantity}"
            )
        k = seen.get(fill.client_order_id, 0)
        seen[fill.client_order_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(
            {
                "id": order.id,
                "filled": filled[fill.client_order_id],
                "price": fill.price,
                "qty": fill.quantity,
                "commission": fill.commission,
            }
        )
    for batch in rounds:
        conn.execute(
            text(
                "UPDATE trading.orders o SET filled_quantity = r.filled, "
                "average_fill_price = (COALESCE(o.average_fill_price * o.filled_quantity, 0) "
                "                      + r.price * r.qty) / r.filled, "
                "commission = o.commission + r.commission, updated_at = now(), "
                "status = CASE WHEN r.filled = o.quantity THEN 'filled' ELSE 'partial' END "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id bigint, filled numeric, "
                "price numeric, qty numeric, commission numeric) WHERE o.id = r.id"
            ),
            {"rows": _records(batch)},
        )


def _position_after(
    state: tuple[Decimal, Decimal, Decimal], signed: Decimal, price: Decimal, fee: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """Return (quantity, average price, realized P&L) of a position after a fill of ``signed``
    at ``price`` paying ``fee``, rounded as the positions table stores them."""
    held, average, realized = state
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
    return new_held, average.quantize(PRICE_STEP), realized.quantize(CASH_STEP)


def _move_positions(
    conn: Connection, deployment: str, fills: list[tuple[str, str, FillRow]]
) -> None:
    symbols = sorted({symbol for _, symbol, _ in fills})
    state = {
        row.symbol: (Decimal(row.quantity), Decimal(row.average_price), Decimal(row.realized_pnl))
        for row in conn.execute(
            text(
                "SELECT symbol, quantity, average_price, realized_pnl FROM trading.positions "
                "WHERE deployment = :d AND symbol = ANY(:s) ORDER BY symbol FOR UPDATE"
            ),
            {"d": deployment, "s": symbols},
        )
    }
    zero = (Decimal(0), Decimal(0), Decimal(0))
    for side, symbol, fill in fills:
        signed = fill.quantity if side == "buy" else -fill.quantity
        state[symbol] = _position_after(
            state.get(symbol, zero), signed, fill.price, fill.commission
        )
    conn.execute(
        text(
            "INSERT INTO trading.positions (deployment, symbol, quantity, average_price, "
            "realized_pnl, updated_at) SELECT :d, r.s, r.q, r.a, r.r, now() "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(s text, q numeric, a numeric, "
            "r numeric) ON CONFLICT (deployment, symbol) DO UPDATE SET "
            "quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price, "
            "realized_pnl = EXCLUDED.realized_pnl, updated_at = now()"
        ),
        {
            "d": deployment,
            "rows": _records(
                [{"s": s, "q": state[s][0], "a": state[s][1], "r": state[s][2]} for s in symbols]
            ),
        },
    )


def cancel_rests(conn: Connection, client_order_ids: list[str]) -> None:
    """Cancel what is left of each order (buys the cash could not fully pay for)."""
    if client_order_ids:
        conn.execute(
            text(
                "UPDATE trading.orders SET status = 'cancelled', updated_at = now() "
                "WHERE client_order_id = ANY(:c) AND status IN ('sent', 'partial')"
            ),
            {"c": client_order_ids},
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
