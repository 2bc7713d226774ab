"""Brokers: the port the live runner sends orders to, and the paper broker that simulates one.

``PaperBroker`` fills a market order at the open of the symbol's first bar after the decision
(the next available price), worse by slippage, and charges commission in basis points. Sells
fill before buys; a buy the account's cash cannot cover is cut to what it covers and the rest is
cancelled. That is the backtester's execution model, so a replay reproduces a backtest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Engine, text

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


class PaperBroker:
    """Simulated broker filling market orders at the next bar's open from ``market_data.ohlcv``."""

    name = "paper"

    def __init__(self, engine: Engine, account: AccountConfig, timeframe: str = "1d") -> None:
        self.engine = engine
        self.account = account
        self.timeframe = timeframe

    def submit(self, order: OrderRow) -> str:
        """Accept every order; the id is derived from the client id, so resubmits match."""
        return f"paper-{order.client_order_id}"

    def _next_open(self, order: OrderRow, until: datetime) -> tuple[datetime, float] | None:
        with self.engine.connect() as conn:
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
        """Fill each order at its next bar's open, sells first, buys cut to the cash left."""
        results = []
        available = float(cash)
        for order in sorted(orders, key=lambda o: (o.side == "buy", o.symbol)):
            bar = self._next_open(order, until)
            if bar is None:
                continue
            time, open_price = bar
            wanted = float(order.quantity) * (1 if order.side == "buy" else -1)
            costs = self.account
            price = fill_price(open_price, wanted, costs.slippage_bps)
            signed = affordable(
                wanted,
                price,
                available,
                costs.commission_bps,
                costs.lot,
                costs.commission_per_share,
            )
            if signed == 0.0:
                results.append(Execution(order, None, rest_cancelled=True))
                continue
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
            available -= float(quantity) * (1 if signed > 0 else -1) * float(fill.price)
            available -= float(fill.commission)
            results.append(Execution(order, fill, rest_cancelled=quantity < order.quantity))
        return results
