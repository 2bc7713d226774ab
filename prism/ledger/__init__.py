"""The books of live trading in PostgreSQL: accounts, cash and snapshots (:mod:`.accounts`);
orders, fills, positions and decisions (:mod:`.orders`); the order state machine every broker
maps onto (:mod:`.order_states`). Money is exact ``Decimal``; every write is idempotent.

``from prism import ledger`` gives the functions of both (``ledger.apply_fills(...)``).

May import: ``prism.core``, ``prism.db``.
"""

from prism.ledger import money
from prism.ledger.accounts import (
    CASH_STEP,
    DEPLOYMENT_TABLES,
    PRICE_STEP,
    cash,
    ensure_account,
    high_water_mark,
    holdings,
    last_cycle,
    record_snapshot,
    to_decimal,
)
from prism.ledger.orders import (
    FillRow,
    OrderRow,
    apply_fill,
    apply_fills,
    cancel_rest,
    cancel_rests,
    insert_order,
    insert_orders,
    open_orders,
    pending_orders,
    record_decision,
    record_decisions,
    record_signals,
    set_order_status,
    set_order_statuses,
    working_quantities,
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
    "high_water_mark",
    "holdings",
    "insert_order",
    "insert_orders",
    "last_cycle",
    "money",
    "open_orders",
    "pending_orders",
    "record_decision",
    "record_decisions",
    "record_signals",
    "record_snapshot",
    "set_order_status",
    "set_order_statuses",
    "to_decimal",
    "working_quantities",
]
