"""What the network broker adapters (ccxt, Alpaca) share: the client id an exchange is given,
the error a rejected order raises, and the conversion of a broker's view of an order into the
executions the ledger books.

Prism's client order id (``deployment:symbol:bar time``, see
:func:`prism.live.steps.client_order_id`) is the idempotency key: it is sent with every order, so an
order the broker already holds is found again instead of placed twice. Exchanges restrict the
characters and length of client ids, so :func:`exchange_client_id` derives a safe one
deterministically (same input, same id).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import TYPE_CHECKING

from prism.brokers.port import Execution
from prism.brokers.port import OrderRejected as OrderRejected
from prism.core.errors import ConfigError
from prism.ledger import OrderRow
from prism.ledger.order_states import CANCELLED, REJECTED

if TYPE_CHECKING:
    from prism.brokers.port import BrokerOrder

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def exchange_client_id(client_order_id: str, length: int = 36) -> str:
    """Return the id an exchange is given for ``client_order_id``: letters, digits, ``-`` and
    ``_`` only, at most ``length`` characters, readable, and unique by a hash of the original.

    >>> exchange_client_id("demo:BTC/USDT:20240102T000000")
    'demo-BTC-USDT-20240102T00-69d64b08a8'
    """
    digest = hashlib.sha256(client_order_id.encode()).hexdigest()[:10]
    readable = _UNSAFE.sub("-", client_order_id)[: max(0, length - len(digest) - 1)]
    return f"{readable}-{digest}" if readable else digest


def symbol_of(client_order_id: str) -> str:
    """Return the symbol inside a Prism client order id (``deployment:symbol:bar time``)."""
    parts = client_order_id.split(":")
    if len(parts) < 3 or not all(parts):
        raise ConfigError(
            f"client order id {client_order_id!r} is not deployment:symbol:time; "
            "make order ids with prism.live.steps.client_order_id"
        )
    return ":".join(parts[1:-1])


def executions_from(order: OrderRow, known: BrokerOrder | None, until: datetime) -> list[Execution]:
    """Return the executions the ledger should book for ``order`` from the broker's ``known``
    state: one per fill made by ``until`` (UTC), then, if the broker cancelled or rejected the
    order and every fill is in, one that cancels what is left. Fills the ledger has already
    booked are returned again; it ignores them by their fill id."""
    if known is None:
        return []
    fills = [fill for fill in known.fills if fill.time <= until]
    result = [Execution(order, fill, rest_cancelled=False) for fill in fills]
    if known.status in (CANCELLED, REJECTED) and len(fills) == len(known.fills):
        result.append(Execution(order, None, rest_cancelled=True))
    return result
