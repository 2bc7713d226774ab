"""Brokers: the port the live runner sends orders to, and the paper broker that simulates one.

``PaperBroker`` fills a market order completely at the open of the symbol's first bar after the
decision (the next available price), worse by slippage, and charges commission in basis points:
the same execution model as the backtester.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, text

from prism.ledger import FillRow, OrderRow, to_decimal
from prism.portfolio import commission, fill_price


class Broker(Protocol):
    """Accepts orders and reports their fills."""

    name: str

    def submit(self, order: OrderRow) -> str:
        """Accept ``order``; return the broker's id for it."""
        ...

    def poll_fills(self, orders: list[OrderRow], until: datetime) -> list[FillRow]:
        """Return the fills of ``orders`` that happened up to ``until`` (UTC)."""
        ...


class PaperBroker:
    """Simulated broker filling market orders at the next bar's open from ``market_data.ohlcv``."""

    name = "paper"

    def __init__(self, engine: Engine, commission_bps: float, slippage_bps: float,
                 timeframe: str = "1d") -> None:
        self.engine = engine
        self.commission_bps = commission_bps
        self.slippage_bps = slippage_bps
        self.timeframe = timeframe

    def submit(self, order: OrderRow) -> str:
        """Accept every order; the id is derived from the client id, so resubmits match."""
        return f"paper-{order.client_order_id}"

    def poll_fills(self, orders: list[OrderRow], until: datetime) -> list[FillRow]:
        """Fill each order at the open of its symbol's first bar after its decision."""
        fills = []
        with self.engine.connect() as conn:
            for order in orders:
                bar = conn.execute(
                    text(
                        "SELECT time, open FROM market_data.ohlcv WHERE symbol = :s "
                        "AND timeframe = :tf AND time > :after AND time <= :until "
                        "ORDER BY time LIMIT 1"
                    ),
                    {"s": order.symbol, "tf": self.timeframe, "after": order.decided_at,
                     "until": until},
                ).one_or_none()
                if bar is None:
                    continue
                signed = float(order.quantity) * (1 if order.side == "buy" else -1)
                price = fill_price(float(bar.open), signed, self.slippage_bps)
                fills.append(
                    FillRow(
                        fill_id=f"{order.client_order_id}/1",
                        client_order_id=order.client_order_id,
                        time=bar.time,
                        quantity=order.quantity,
                        price=to_decimal(price),
                        commission=to_decimal(commission(signed, price, self.commission_bps)),
                    )
                )
        return fills
