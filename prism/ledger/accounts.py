"""A deployment's account in the ledger: its cash and holdings, its cycles' portfolio snapshots, and
the exact money conversions every ledger write uses (``Decimal`` at the database's steps).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, text

from prism.core.errors import InvariantViolated

DEPLOYMENT_TABLES = (
    "audit.decisions",
    "trading.risk_snapshots",
    "trading.paper_fills",
    "trading.paper_orders",
    "trading.fills",
    "trading.orders",
    "trading.positions",
    "trading.portfolio_snapshots",
    "trading.high_water_marks",
    "trading.accounts",
)
"""Every table holding a deployment's state, children before parents (safe deletion order)."""


PRICE_STEP = Decimal("0.000001")


CASH_STEP = Decimal("0.0001")


def to_decimal(value: float, step: Decimal = PRICE_STEP) -> Decimal:
    """Return ``value`` as a Decimal rounded to ``step``."""
    return Decimal(repr(value)).quantize(step)


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


def high_water_mark(conn: Connection, deployment: str) -> Decimal | None:
    """Return the highest equity any snapshot of ``deployment`` recorded (kept by a trigger on
    ``trading.portfolio_snapshots``, so no window of snapshots can forget it), or None before
    its first snapshot."""
    value = conn.execute(
        text("SELECT equity FROM trading.high_water_marks WHERE deployment = :d"),
        {"d": deployment},
    ).scalar_one_or_none()
    return None if value is None else Decimal(value)
