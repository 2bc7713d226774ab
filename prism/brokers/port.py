"""The broker port: what the live runner asks of any broker, and what a broker answers.

A broker takes orders by Prism's client order id (:class:`prism.ledger.OrderRow`), is asked for
what became of them (:class:`Execution`: a fill, and whether the rest was cancelled), and can be
looked up by client id after a restart. :mod:`.paper`, :mod:`.ccxt` and :mod:`.alpaca`
implement it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from prism.core.errors import PrismError
from prism.ledger import FillRow, OrderRow


class OrderRejected(PrismError):
    """The broker refused the order (insufficient funds, an invalid size…); it was not placed.

    Record the order as ``rejected`` with :attr:`reason`; sending it again changes nothing.
    """

    def __init__(self, client_order_id: str, reason: str) -> None:
        super().__init__(f"order {client_order_id} rejected by the broker: {reason}")
        self.client_order_id = client_order_id
        self.reason = reason


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Execution:
    """What became of an order: its fill (if any) and whether the rest of it was cancelled."""

    order: OrderRow
    fill: FillRow | None
    rest_cancelled: bool


@dataclass(frozen=True)
class BrokerOrder:
    """What a broker knows of one order: its state (one of :mod:`prism.ledger.order_states`), how
    much of it is filled and at what average price, and each fill."""

    client_order_id: str
    broker_order_id: str
    status: str
    filled_quantity: Decimal
    average_price: Decimal | None
    fills: tuple[FillRow, ...]


class Broker(Protocol):
    """Accepts orders and reports what became of them."""

    name: str

    def submit(self, order: OrderRow) -> str:
        """Accept ``order``; return the broker's id for it."""
        ...

    def executions(self, orders: list[OrderRow], cash: Decimal, until: datetime) -> list[Execution]:
        """Return what happened to ``orders`` up to ``until`` (UTC), given the account's cash."""
        ...

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        """Return what the broker knows of the order (None if it never received it)."""
        ...

    def positions(self) -> dict[str, Decimal]:
        """Return the broker's own non-zero positions, for reconciliation."""
        ...

    def cash(self) -> Decimal:
        """Return the account's cash by the broker's own books, for reconciliation."""
        ...


def submit_all(broker: Broker, orders: list[OrderRow]) -> dict[str, str | None]:
    """Send ``orders``; return the broker's id per client order id, None for an order the
    broker rejected (the others are still sent). A broker with a ``submit_many`` (the paper
    broker) takes them all at once, any other one by one."""
    if not orders:
        return {}
    many = getattr(broker, "submit_many", None)
    if many is not None:
        return dict(many(orders))
    sent: dict[str, str | None] = {}
    for order in orders:
        try:
            sent[order.client_order_id] = broker.submit(order)
        except OrderRejected as err:
            log.warning("%s", err)
            sent[order.client_order_id] = None
    return sent


def submitted(sent: dict[str, str | None]) -> list[tuple[str, str, str | None]]:
    """Return the ledger status changes of :func:`submit_all`'s answer: ``sent`` with the
    broker's id, or ``rejected``."""
    return [(cid, "sent" if bid else "rejected", bid) for cid, bid in sent.items()]
