"""A spot broker on any exchange ccxt knows, on the exchange's sandbox where it has one.

Orders carry a deterministic client id (:func:`prism.brokers.exchange_orders.exchange_client_id`),
so submitting is idempotent: when the exchange answers a submit with an error that may mean "you
already sent this" (a duplicate id, an invalid order) or does not answer at all (a timeout, a
dropped connection), the order is first looked up by its client id, and only an order the
exchange does not have is treated as refused (a rejection) or as not sent (retry later with the
same id). What became of an order comes from the exchange's own records: the order's status and
its trades, each trade one fill.

ccxt statuses map onto :mod:`prism.ledger.order_states`: ``open`` is ``sent`` (``partial`` once some
of it is filled), ``closed`` is ``filled``, ``canceled`` and ``expired`` are ``cancelled``,
``rejected`` is ``rejected``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prism.brokers.exchange_orders import (
    OrderRejected,
    exchange_client_id,
    executions_from,
    symbol_of,
)
from prism.brokers.port import BrokerOrder, Execution
from prism.core.errors import ConfigError, TransientError
from prism.core.settings import Settings
from prism.data.crypto import open_exchange
from prism.ledger import PRICE_STEP, FillRow, OrderRow, to_decimal
from prism.ledger.order_states import CANCELLED, FILLED, PARTIAL, REJECTED, SENT


def ccxt_state(status: str | None, filled: float | None) -> str:
    """Return the order state of a ccxt order ``status`` with ``filled`` already executed."""
    if status == "closed":
        return FILLED
    if status in ("canceled", "cancelled", "expired"):
        return CANCELLED
    if status == "rejected":
        return REJECTED
    return PARTIAL if filled else SENT


class CcxtBroker:
    """Spot orders on the ccxt exchange ``exchange`` (``binance``, ``kraken``, …).

    ``sandbox`` (the default) switches ccxt to the exchange's test network and refuses an
    exchange without one; ``quote`` is the currency positions are quoted in (a balance of 0.5
    BTC is the position ``BTC/USDT``: 0.5). ``config`` goes to the ccxt constructor (a
    ``session`` to route HTTP, ``options``).
    """

    def __init__(
        self,
        exchange: str,
        api_key: str | None = None,
        secret: str | None = None,
        sandbox: bool = True,
        quote: str = "USDT",
        config: dict[str, Any] | None = None,
    ) -> None:
        """Build the ccxt client (no request is made until an order is sent or looked up)."""
        credentials = {"apiKey": api_key, "secret": secret} if api_key else {}
        self.client = open_exchange(
            exchange, {"enableRateLimit": True, **credentials, **(config or {})}
        )
        if sandbox:
            if not self.client.urls.get("test"):
                raise ConfigError(
                    f"{exchange} has no sandbox in ccxt; set PRISM_CCXT_SANDBOX=false to trade "
                    "it for real, or choose an exchange with a test network"
                )
            self.client.set_sandbox_mode(True)
        if not (self.client.has.get("fetchOrderTrades") or self.client.has.get("fetchMyTrades")):
            raise ConfigError(f"{exchange} reports no trades through ccxt; Prism cannot book fills")
        self.exchange_id = exchange
        self.name = f"ccxt:{exchange}"
        self.quote = quote

    @classmethod
    def from_settings(
        cls, settings: Settings, exchange: str, config: dict[str, Any] | None = None
    ) -> CcxtBroker:
        """Return a broker with the key, secret and sandbox choice of ``settings``."""
        key, secret = settings.ccxt_api_key, settings.ccxt_secret
        return cls(
            exchange,
            key.get_secret_value() if key else None,
            secret.get_secret_value() if secret else None,
            sandbox=settings.ccxt_sandbox,
            config=config,
        )

    def submit(self, order: OrderRow, limit_price: Decimal | None = None) -> str:
        """Place ``order`` (a limit order at ``limit_price`` if given); return the exchange's id.

        Raises :class:`OrderRejected` when the exchange refuses it and :class:`TransientError`
        when the exchange could not be reached and does not have the order.
        """
        # Imported here: ccxt takes ~5 s to import; only exchange users need it.
        import ccxt

        client_id = exchange_client_id(order.client_order_id)
        kind, price = ("limit", float(limit_price)) if limit_price is not None else ("market", None)
        try:
            with self._translated():
                placed = self.client.create_order(
                    order.symbol,
                    kind,
                    order.side,
                    float(order.quantity),
                    price,
                    {"clientOrderId": client_id},
                )
            return str(placed["id"])
        except (TransientError, ccxt.InvalidOrder) as err:
            known = self.lookup(order.client_order_id)
            if known is not None:
                return known.broker_order_id
            if isinstance(err, ccxt.InvalidOrder):
                raise OrderRejected(order.client_order_id, str(err)) from err
            raise TransientError(
                f"{self.exchange_id} did not confirm order {order.client_order_id} and does not "
                f"have it ({err}); send it again: the same client id keeps it from doubling"
            ) from err
        except ccxt.ExchangeError as err:
            raise OrderRejected(order.client_order_id, str(err)) from err

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        """Return the exchange's view of the order with that client id, or None if it has none."""
        # Imported here: ccxt takes ~5 s to import; only exchange users need it.
        import ccxt

        symbol = symbol_of(client_order_id)
        with self._translated():
            try:
                placed = self.client.fetch_order(
                    None, symbol, {"clientOrderId": exchange_client_id(client_order_id)}
                )
            except ccxt.OrderNotFound:
                return None
            trades = self._trades(str(placed["id"]), symbol, placed.get("timestamp"))
        fills = tuple(self._fill(client_order_id, trade, symbol) for trade in trades)
        average = placed.get("average")
        return BrokerOrder(
            client_order_id=client_order_id,
            broker_order_id=str(placed["id"]),
            status=ccxt_state(placed.get("status"), placed.get("filled")),
            filled_quantity=Decimal(repr(float(placed.get("filled") or 0.0))),
            average_price=to_decimal(float(average)) if average else None,
            fills=fills,
        )

    def executions(self, orders: list[OrderRow], cash: Decimal, until: datetime) -> list[Execution]:
        """Return each order's fills made by ``until`` (UTC), and the cancellation of what the
        exchange cancelled; ``cash`` is unused (the exchange enforces its own balance)."""
        return [
            execution
            for order in orders
            for execution in executions_from(order, self.lookup(order.client_order_id), until)
        ]

    def positions(self) -> dict[str, Decimal]:
        """Return every non-zero balance but the quote currency as a position ``BASE/QUOTE``."""
        with self._translated():
            balance = self.client.fetch_balance()
        return {
            f"{currency}/{self.quote}": Decimal(repr(float(total)))
            for currency, total in (balance.get("total") or {}).items()
            if total and currency != self.quote
        }

    def cash(self) -> Decimal:
        """Return the account's total balance of the quote currency (free and in orders)."""
        with self._translated():
            balance = self.client.fetch_balance()
        return Decimal(str((balance.get("total") or {}).get(self.quote) or 0))

    def _trades(self, order_id: str, symbol: str, since: int | None) -> list[dict[str, Any]]:
        if self.client.has.get("fetchOrderTrades") is True:
            return list(self.client.fetch_order_trades(order_id, symbol))
        trades = self.client.fetch_my_trades(symbol, since)
        return [trade for trade in trades if str(trade.get("order")) == order_id]

    def _fill(self, client_order_id: str, trade: dict[str, Any], symbol: str) -> FillRow:
        price = float(trade["price"])
        return FillRow(
            fill_id=f"{client_order_id}/{trade['id']}",
            client_order_id=client_order_id,
            time=datetime.fromtimestamp(trade["timestamp"] / 1000, tz=UTC),
            quantity=Decimal(repr(float(trade["amount"]))),
            price=to_decimal(price),
            commission=self._fee_in_quote(trade.get("fee"), symbol, price),
        )

    @staticmethod
    def _fee_in_quote(fee: dict[str, Any] | None, symbol: str, price: float) -> Decimal:
        """Return a trade's fee in the quote currency; a fee in a third currency (an exchange
        token) has no price here and is booked as zero."""
        if not fee or not fee.get("cost"):
            return Decimal(0)
        base, quote = symbol.split("/")[0], symbol.split("/")[-1].split(":")[0]
        if fee.get("currency") == quote:
            return to_decimal(float(fee["cost"]), PRICE_STEP)
        if fee.get("currency") == base:
            return to_decimal(float(fee["cost"]) * price, PRICE_STEP)
        return Decimal(0)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Translate ccxt's errors: credentials and markets are ConfigError, an exchange that
        did not answer (timeout, dropped connection, rate limit) is TransientError."""
        # Imported here: ccxt takes ~5 s to import; only exchange users need it.
        import ccxt

        try:
            yield
        except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as err:
            raise ConfigError(
                f"{self.exchange_id} refused the credentials ({err}); check PRISM_CCXT_API_KEY "
                "and PRISM_CCXT_SECRET (sandbox keys differ from live ones)"
            ) from err
        except ccxt.BadSymbol as err:
            raise ConfigError(
                f"{self.exchange_id} does not list that market ({err}); use unified spot "
                "symbols like BTC/USDT"
            ) from err
        except ccxt.NetworkError as err:
            raise TransientError(
                f"{self.exchange_id} did not answer ({type(err).__name__}: {err})"
            ) from err
