"""The books of live trading in PostgreSQL: accounts, orders, fills, positions, snapshots and
decisions (:mod:`.book`, exact ``Decimal`` money, idempotent writes) and the order state
machine every broker maps onto (:mod:`.order_states`).

``from prism import ledger`` gives the book's functions (``ledger.apply_fills(...)``).

May import: ``prism.core``, ``prism.db``.
"""

from prism.ledger.book import (
    CASH_STEP,
    DEPLOYMENT_TABLES,
    PRICE_STEP,
    FillRow,
    OrderRow,
    apply_fill,
    apply_fills,
    cancel_rest,
    cancel_rests,
    cash,
    ensure_account,
    holdings,
    insert_order,
    insert_orders,
    last_cycle,
    open_orders,
    pending_orders,
    record_decision,
    record_decisions,
    record_snapshot,
    set_order_status,
    set_order_statuses,
    to_decimal,
)

__all__ = [
    "CASH_STEP",
    "DEPLOYMENT_TABLES",
    "PRICE_STEP",
    "FillRow",
    "OrderRow",
    "apply_fill",
    "apply_fills",
    "cancel_rest",
    "cancel_rests",
    "cash",
    "ensure_account",
    "holdings",
    "insert_order",
    "insert_orders",
    "last_cycle",
    "open_orders",
    "pending_orders",
    "record_decision",
    "record_decisions",
    "record_snapshot",
    "set_order_status",
    "set_order_statuses",
    "to_decimal",
]
