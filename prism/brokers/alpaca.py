"""A broker on Alpaca (paper or live) through alpaca-py's ``TradingClient``.

Every order carries Prism's client order id as Alpaca's ``client_order_id``, so submitting is
idempotent: when Alpaca says the id is taken (HTTP 422), or does not answer (a timeout, a
dropped connection, a server error), the order is looked up with ``get_order_by_client_id``
before anything else, and only an order Alpaca does not have is treated as refused or as not
sent. Fills are Alpaca's ``FILL`` account activities of the order, one fill each.

Alpaca statuses map onto :mod:`prism.ledger.order_states`: ``new``, ``accepted``, ``pending_new``
and the other working states are ``sent`` (``partial`` once something is filled),
``partially_filled`` is ``partial``, ``filled`` is ``filled``, ``canceled``, ``expired``,
``done_for_day`` and ``replaced`` are ``cancelled``, ``rejected`` and ``suspended`` are
``rejected``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import Order, Position
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from prism.brokers.exchange_orders import OrderRejected, exchange_client_id, executions_from
from prism.brokers.port import BrokerOrder, Execution
from prism.core.errors import ConfigError, TransientError
from prism.core.settings import Settings
from prism.ledger import FillRow, OrderRow
from prism.ledger.order_states import CANCELLED, FILLED, PARTIAL, REJECTED, SENT

_STATES = {
    "partially_filled": PARTIAL,
    "filled": FILLED,
    "canceled": CANCELLED,
    "expired": CANCELLED,
    "done_for_day": CANCELLED,
    "replaced": CANCELLED,
    "rejected": REJECTED,
    "suspended": REJECTED,
}
_PAGE = 100
_UNREACHABLE = (requests.exceptions.Timeout, requests.exceptions.ConnectionError)


def alpaca_state(status: str, filled: Decimal) -> str:
    """Return the order state of an Alpaca order ``status`` with ``filled`` already executed."""
    return _STATES.get(status, PARTIAL if filled else SENT)


def alpaca_client_id(client_order_id: str) -> str:
    """Return the id Alpaca is given: Prism's own, unless longer than Alpaca's 128 characters."""
    if len(client_order_id) <= 128:
        return client_order_id
    return exchange_client_id(client_order_id, 128)


class AlpacaBroker:
    """US equities (and Alpaca's crypto) orders through an alpaca-py ``TradingClient``."""

    def __init__(self, client: TradingClient, paper: bool = True) -> None:
        """Wrap ``client`` (built with the paper or live keys ``paper`` says)."""
        self.client = client
        self.name = "alpaca-paper" if paper else "alpaca"

    @classmethod
    def from_settings(cls, settings: Settings) -> AlpacaBroker:
        """Return a broker with the keys and the paper/live choice of ``settings``."""
        key, secret = settings.alpaca_key_id, settings.alpaca_secret_key
        if key is None or secret is None:
            raise ConfigError(
                "Alpaca needs API keys: set PRISM_ALPACA_KEY_ID and PRISM_ALPACA_SECRET_KEY "
                "(paper keys while PRISM_ALPACA_PAPER is true)"
            )
        client = TradingClient(
            key.get_secret_value(), secret.get_secret_value(), paper=settings.alpaca_paper
        )
        return cls(client, paper=settings.alpaca_paper)

    def submit(self, order: OrderRow, limit_price: Decimal | None = None) -> str:
        """Place ``order`` as a day order (a limit order at ``limit_price`` if given); return
        Alpaca's order id.

        Raises :class:`OrderRejected` when Alpaca refuses it and :class:`TransientError` when
        Alpaca could not be reached and does not have the order.
        """
        fields: dict[str, Any] = {
            "symbol": order.symbol,
            "qty": float(order.quantity),
            "side": OrderSide.BUY if order.side == "buy" else OrderSide.SELL,
            "time_in_force": TimeInForce.DAY,
            "client_order_id": alpaca_client_id(order.client_order_id),
        }
        request = (
            LimitOrderRequest(**fields, limit_price=float(limit_price))
            if limit_price is not None
            else MarketOrderRequest(**fields)
        )
        try:
            with self._translated():
                placed = self.client.submit_order(request)
        except (APIError, TransientError) as err:
            known = self.lookup(order.client_order_id)
            if known is not None:
                return known.broker_order_id
            if isinstance(err, APIError):
                raise OrderRejected(order.client_order_id, _reason(err)) from err
            raise TransientError(
                f"Alpaca did not confirm order {order.client_order_id} and does not have it "
                f"({err}); send it again: the same client id keeps it from doubling"
            ) from err
        assert isinstance(placed, Order)
        return str(placed.id)

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        """Return Alpaca's view of the order with that client id, or None if it has none."""
        with self._translated():
            try:
                placed = self.client.get_order_by_client_id(alpaca_client_id(client_order_id))
            except APIError as err:
                if _status(err) == 404:
                    return None
                raise
            assert isinstance(placed, Order)
            activities = self._fills_of(str(placed.id), placed.submitted_at)
        filled = Decimal(str(placed.filled_qty or 0))
        average = placed.filled_avg_price
        return BrokerOrder(
            client_order_id=client_order_id,
            broker_order_id=str(placed.id),
            status=alpaca_state(str(placed.status.value), filled),
            filled_quantity=filled,
            average_price=Decimal(str(average)) if average is not None else None,
            fills=tuple(_fill(client_order_id, activity) for activity in activities),
        )

    def executions(self, orders: list[OrderRow], cash: Decimal, until: datetime) -> list[Execution]:
        """Return each order's fills made by ``until`` (UTC), and the cancellation of what Alpaca
        cancelled; ``cash`` is unused (Alpaca enforces its own buying power)."""
        return [
            execution
            for order in orders
            for execution in executions_from(order, self.lookup(order.client_order_id), until)
        ]

    def positions(self) -> dict[str, Decimal]:
        """Return Alpaca's positions: symbol to signed quantity (short positions negative)."""
        with self._translated():
            held = self.client.get_all_positions()
        return {p.symbol: Decimal(p.qty) for p in held if isinstance(p, Position)}

    def cash(self) -> Decimal:
        """Return the account's cash as Alpaca reports it."""
        with self._translated():
            account = self.client.get_account()
        return Decimal(str(getattr(account, "cash", None) or 0))

    def _fills_of(self, order_id: str, submitted_at: datetime) -> list[dict[str, Any]]:
        """Return the order's FILL activities, oldest first, paging from its submission."""
        params: dict[str, Any] = {
            "after": (submitted_at - timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            "direction": "asc",
            "page_size": _PAGE,
        }
        fills: list[dict[str, Any]] = []
        while True:
            page = self.client.get("/account/activities/FILL", params)
            assert isinstance(page, list)
            fills += [a for a in page if a.get("order_id") == order_id]
            if len(page) < _PAGE:
                return fills
            params["page_token"] = page[-1]["id"]

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Translate Alpaca's errors: refused keys are ConfigError; no answer, a server error or
        a rate limit alpaca-py's own retries did not get past is TransientError."""
        try:
            yield
        except APIError as err:
            refused_keys = _status(err) == 401 or _reason(err).lower().startswith("forbidden")
            if refused_keys:
                raise ConfigError(
                    f"Alpaca refused the API keys ({_reason(err)}); check PRISM_ALPACA_KEY_ID "
                    "and PRISM_ALPACA_SECRET_KEY (paper keys differ from live ones)"
                ) from err
            if _status(err) >= 500 or _status(err) == 429:
                raise TransientError(
                    f"Alpaca failed to answer (HTTP {_status(err)}: {_reason(err)})"
                ) from err
            raise
        except _UNREACHABLE as err:
            raise TransientError(f"Alpaca did not answer ({type(err).__name__}: {err})") from err


def _status(err: APIError) -> int:
    return int(err.status_code or 0)


def _reason(err: APIError) -> str:
    try:
        return str(err.message)
    except (ValueError, KeyError, TypeError):
        return str(err)


def _fill(client_order_id: str, activity: dict[str, Any]) -> FillRow:
    return FillRow(
        fill_id=f"{client_order_id}/{activity['id']}",
        client_order_id=client_order_id,
        time=datetime.fromisoformat(activity["transaction_time"].replace("Z", "+00:00")),
        quantity=Decimal(activity["qty"]),
        price=Decimal(activity["price"]),
        commission=Decimal(0),
    )
