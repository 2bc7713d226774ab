"""Brokers: the port the live runner sends orders to, and the paper broker that simulates one.

``PaperBroker`` fills a market order at the open of the symbol's first bar after the decision
(the next available price), worse by slippage, and charges commission in basis points. Sells
fill before buys; a buy the account's cash cannot cover is cut to what it covers and the rest is
cancelled. That is the backtester's execution model, so a replay reproduces a backtest.

The paper broker keeps its own books in the database (``trading.paper_orders`` and
``trading.paper_fills``, apart from the ledger), so a restarted runner asks it about an order by
client id (:meth:`PaperBroker.lookup`) and gets the same answer an exchange would give, and a fill
once made is reported the same way every time it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from prism.ledger import FillRow, OrderRow, to_decimal
from prism.portfolio import AccountConfig, affordable, commission, fill_price


@dataclass(frozen=True)
class Execution:
    """What became of an order: its fill (if any) and whether the rest of it was cancelled."""

    order: OrderRow
    fill: FillRow | None
    rest_cancelled: bool


@dataclass(frozen=True)
class BrokerOrder:
    """What a broker knows of one order: its state (one of :mod:`prism.order_states`), how
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


class PaperBroker:
    """Simulated broker filling market orders at the next bar's open from ``market_data.ohlcv``,
    with its books in ``trading.paper_orders`` / ``trading.paper_fills`` under ``account``
    (default: the deployment of ``account`` config when it has one)."""

    name = "paper"

    def __init__(
        self,
        engine: Engine,
        account: AccountConfig,
        timeframe: str = "1d",
        account_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.account = account
        self.timeframe = timeframe
        self.account_id = account_id or str(getattr(account, "deployment", "paper"))

    def submit(self, order: OrderRow) -> str:
        """Accept ``order`` once; a resubmit of the same client id returns the same id."""
        with self.engine.begin() as conn:
            self._receive(conn, order)
        return self._broker_id(order.client_order_id)

    @staticmethod
    def _broker_id(client_order_id: str) -> str:
        return f"paper-{client_order_id}"

    def _receive(self, conn: Connection, order: OrderRow) -> None:
        conn.execute(
            text(
                "INSERT INTO trading.paper_orders (client_order_id, deployment, symbol, side, "
                "quantity, decided_at) VALUES (:c, :d, :s, :side, :q, :t) "
                "ON CONFLICT (client_order_id) DO NOTHING"
            ),
            {
                "c": order.client_order_id,
                "d": self.account_id,
                "s": order.symbol,
                "side": order.side,
                "q": order.quantity,
                "t": order.decided_at,
            },
        )

    def lookup(self, client_order_id: str) -> BrokerOrder | None:
        """Return the paper broker's record of the order and its fills."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT status FROM trading.paper_orders WHERE client_order_id = :c"),
                {"c": client_order_id},
            ).one_or_none()
            if row is None:
                return None
            fills = self._fills(conn, client_order_id)
        filled = sum((f.quantity for f in fills), Decimal(0))
        average = (
            sum((f.quantity * f.price for f in fills), Decimal(0)) / filled if filled else None
        )
        return BrokerOrder(
            client_order_id=client_order_id,
            broker_order_id=self._broker_id(client_order_id),
            status=row.status,
            filled_quantity=filled,
            average_price=average,
            fills=tuple(fills),
        )

    @staticmethod
    def _fills(conn: Connection, client_order_id: str) -> list[FillRow]:
        rows = conn.execute(
            text(
                "SELECT fill_id, client_order_id, time, quantity, price, commission "
                "FROM trading.paper_fills WHERE client_order_id = :c ORDER BY fill_id"
            ),
            {"c": client_order_id},
        )
        return [FillRow(*row) for row in rows]

    def positions(self) -> dict[str, Decimal]:
        """Return the account's net filled quantity per symbol (non-zero only)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT o.symbol, sum(CASE WHEN o.side = 'buy' THEN f.quantity "
                    "ELSE -f.quantity END) FROM trading.paper_fills f JOIN trading.paper_orders o "
                    "USING (client_order_id) WHERE o.deployment = :d GROUP BY o.symbol"
                ),
                {"d": self.account_id},
            )
            return {symbol: Decimal(q) for symbol, q in rows if q != 0}

    def _next_open(
        self, conn: Connection, order: OrderRow, until: datetime
    ) -> tuple[datetime, float] | None:
        bar = conn.execute(
            text(
                "SELECT time, open FROM market_data.ohlcv WHERE symbol = :s "
                "AND timeframe = :tf AND time > :after AND time <= :until "
                "ORDER BY time LIMIT 1"
            ),
            {
                "s": order.symbol,
                "tf": self.timeframe,
                "after": order.decided_at,
                "until": until,
            },
        ).one_or_none()
        return (bar.time, float(bar.open)) if bar else None

    def executions(self, orders: list[OrderRow], cash: Decimal, until: datetime) -> list[Execution]:
        """Fill each order at its next bar's open, sells first, buys cut to the cash left.

        An order filled before is reported with its stored fill, never filled again.
        """
        results = []
        available = float(cash)
        with self.engine.begin() as conn:
            for order in sorted(orders, key=lambda o: (o.side == "buy", o.symbol)):
                self._receive(conn, order)
                known = self._fills(conn, order.client_order_id)
                if known:
                    fill: FillRow | None = known[0]
                    status = conn.execute(
                        text("SELECT status FROM trading.paper_orders WHERE client_order_id = :c"),
                        {"c": order.client_order_id},
                    ).scalar()
                    execution = Execution(order, fill, rest_cancelled=status == "cancelled")
                else:
                    maybe = self._execute(conn, order, available, until)
                    if maybe is None:
                        continue
                    execution, fill = maybe, maybe.fill
                if fill is not None:
                    sign = 1 if order.side == "buy" else -1
                    available -= sign * float(fill.quantity) * float(fill.price)
                    available -= float(fill.commission)
                results.append(execution)
        return results

    def _execute(
        self, conn: Connection, order: OrderRow, available: float, until: datetime
    ) -> Execution | None:
        bar = self._next_open(conn, order, until)
        if bar is None:
            return None
        time, open_price = bar
        wanted = float(order.quantity) * (1 if order.side == "buy" else -1)
        costs = self.account
        price = fill_price(open_price, wanted, costs.slippage_bps)
        signed = affordable(
            wanted, price, available, costs.commission_bps, costs.lot, costs.commission_per_share
        )
        if signed == 0.0:
            self._set_status(conn, order.client_order_id, "cancelled")
            return Execution(order, None, rest_cancelled=True)
        quantity = Decimal(repr(abs(signed)))
        fill = FillRow(
            fill_id=f"{order.client_order_id}/1",
            client_order_id=order.client_order_id,
            time=time,
            quantity=quantity,
            price=to_decimal(price),
            commission=to_decimal(
                commission(signed, price, costs.commission_bps, costs.commission_per_share)
            ),
        )
        conn.execute(
            text(
                "INSERT INTO trading.paper_fills (fill_id, client_order_id, deployment, time, "
                "quantity, price, commission) VALUES (:fill_id, :client_order_id, :d, :time, "
                ":quantity, :price, :commission) ON CONFLICT (fill_id) DO NOTHING"
            ),
            {**fill.__dict__, "d": self.account_id},
        )
        rest_cancelled = quantity < order.quantity
        self._set_status(conn, order.client_order_id, "cancelled" if rest_cancelled else "filled")
        return Execution(order, fill, rest_cancelled=rest_cancelled)

    @staticmethod
    def _set_status(conn: Connection, client_order_id: str, status: str) -> None:
        conn.execute(
            text("UPDATE trading.paper_orders SET status = :s WHERE client_order_id = :c"),
            {"s": status, "c": client_order_id},
        )
