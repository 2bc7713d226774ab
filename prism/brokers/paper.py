"""The paper broker: a simulated venue with the backtester's execution model.

``PaperBroker`` fills a market order at the open of the symbol's first bar after the decision
(the next available price), worse by slippage, and charges commission in basis points. Sells
fill before buys; a buy the account's cash cannot cover is cut to what it covers and the rest is
cancelled. That is the backtester's execution model, so a replay reproduces a backtest.
With the deployment parameter ``participation`` an order also fills at most that share of
its fill bar's volume (whole lots), the rest cancelled: partial fills, off by default.

The paper broker keeps its own books in the database (``trading.paper_orders`` and
``trading.paper_fills``, apart from the ledger), so a restarted runner asks it about an order by
client id (:meth:`PaperBroker.lookup`) and gets the same answer an exchange would give, and a fill
once made is reported the same way every time it is asked for.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from prism.backtest.portfolio import AccountConfig
from prism.brokers.port import BrokerOrder, Execution
from prism.ledger import FillRow, OrderRow, money


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
        return self.submit_many([order])[order.client_order_id]

    def submit_many(self, orders: list[OrderRow]) -> dict[str, str]:
        """Accept ``orders`` in one transaction; return the broker id per client order id."""
        with self.engine.begin() as conn:
            self._receive(conn, orders)
        return {o.client_order_id: self._broker_id(o.client_order_id) for o in orders}

    @staticmethod
    def _broker_id(client_order_id: str) -> str:
        return f"paper-{client_order_id}"

    def _receive(self, conn: Connection, orders: list[OrderRow]) -> None:
        if not orders:
            return
        rows = [
            {
                "c": o.client_order_id,
                "s": o.symbol,
                "side": o.side,
                "q": str(o.quantity),
                "t": pd.Timestamp(o.decided_at).isoformat(),
                "n": k,
            }
            for k, o in enumerate(orders)
        ]
        conn.execute(
            text(
                "INSERT INTO trading.paper_orders (client_order_id, deployment, symbol, side, "
                "quantity, decided_at) SELECT r.c, :d, r.s, r.side, r.q, r.t "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(c text, "
                "s text, side text, q numeric, t timestamptz, n bigint) ORDER BY r.n "
                "ON CONFLICT (client_order_id) DO NOTHING"
            ),
            {"rows": json.dumps(rows), "d": self.account_id},
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

    def cash(self) -> Decimal:
        """Return the account's cash by the paper broker's own fills: its capital less what
        every fill cost (bought notional and commission) plus what sales brought."""
        with self.engine.connect() as conn:
            spent = conn.execute(
                text(
                    "SELECT coalesce(sum(CASE WHEN o.side = 'buy' THEN f.quantity * f.price "
                    "ELSE -f.quantity * f.price END + f.commission), 0) FROM trading.paper_fills f "
                    "JOIN trading.paper_orders o USING (client_order_id) WHERE o.deployment = :d"
                ),
                {"d": self.account_id},
            ).scalar_one()
        return money.exact(self.account.capital) - Decimal(spent)

    def _next_opens(
        self, conn: Connection, orders: list[OrderRow], until: datetime
    ) -> dict[str, tuple[datetime, float, float]]:
        """Return the first bar (time, open, volume) after each order's decision up to
        ``until``, by client order id, in one query (orders without such a bar are left out)."""
        rows = [
            {"c": o.client_order_id, "s": o.symbol, "t": pd.Timestamp(o.decided_at).isoformat()}
            for o in orders
        ]
        found = conn.execute(
            text(
                "SELECT r.c, b.time, b.open, b.volume "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
                "AS r(c text, s text, t timestamptz) CROSS JOIN LATERAL ("
                "  SELECT time, open, volume FROM market_data.ohlcv WHERE symbol = r.s "
                "  AND timeframe = :tf AND time > r.t AND time <= :until ORDER BY time LIMIT 1"
                ") b"
            ),
            {"rows": json.dumps(rows), "tf": self.timeframe, "until": until},
        )
        return {c: (time, float(price), float(volume)) for c, time, price, volume in found}

    def executions(self, orders: list[OrderRow], cash: Decimal, until: datetime) -> list[Execution]:
        """Fill each order at its next bar's open, sells first, buys cut to the cash left.

        An order filled before is reported with its stored fill, never filled again. All
        orders are settled in one transaction of a few statements.
        """
        if not orders:
            return []
        results = []
        available = cash
        ids = [o.client_order_id for o in orders]
        fresh: list[dict[str, object]] = []
        statuses: dict[str, str] = {}
        with self.engine.begin() as conn:
            self._receive(conn, orders)
            known = self._known_fills(conn, ids)
            stored: dict[str, str] = {
                str(c): str(s)
                for c, s in conn.execute(
                    text(
                        "SELECT client_order_id, status FROM trading.paper_orders "
                        "WHERE client_order_id = ANY(:c)"
                    ),
                    {"c": ids},
                )
            }
            bars = self._next_opens(
                conn, [o for o in orders if o.client_order_id not in known], until
            )
            for order in sorted(orders, key=lambda o: (o.side == "buy", o.symbol)):
                if order.client_order_id in known:
                    fill: FillRow | None = known[order.client_order_id][0]
                    cancelled = stored.get(order.client_order_id) == "cancelled"
                    execution = Execution(order, fill, rest_cancelled=cancelled)
                else:
                    bar = bars.get(order.client_order_id)
                    if bar is None:
                        continue
                    execution = self._execute(order, bar, available)
                    fill = execution.fill
                    if fill is not None:
                        fresh.append({**fill.__dict__})
                    statuses[order.client_order_id] = (
                        "cancelled" if execution.rest_cancelled else "filled"
                    )
                if fill is not None:
                    sign = 1 if order.side == "buy" else -1
                    available -= sign * fill.quantity * fill.price + fill.commission
                results.append(execution)
            self._store(conn, fresh, statuses)
        return results

    def _known_fills(self, conn: Connection, ids: list[str]) -> dict[str, list[FillRow]]:
        rows = conn.execute(
            text(
                "SELECT fill_id, client_order_id, time, quantity, price, commission "
                "FROM trading.paper_fills WHERE client_order_id = ANY(:c) ORDER BY fill_id"
            ),
            {"c": ids},
        )
        known: dict[str, list[FillRow]] = {}
        for row in rows:
            fill = FillRow(*row)
            known.setdefault(fill.client_order_id, []).append(fill)
        return known

    def _store(
        self, conn: Connection, fills: list[dict[str, object]], statuses: dict[str, str]
    ) -> None:
        """Write new fills and order statuses, one statement each."""
        if fills:
            conn.execute(
                text(
                    "INSERT INTO trading.paper_fills (fill_id, client_order_id, deployment, time, "
                    "quantity, price, commission) SELECT r.fill_id, r.client_order_id, :d, r.time, "
                    "r.quantity, r.price, r.commission FROM jsonb_to_recordset("
                    "CAST(:rows AS jsonb)) AS r(fill_id text, client_order_id text, "
                    "time timestamptz, quantity numeric, price numeric, commission numeric) "
                    "ON CONFLICT (fill_id) DO NOTHING"
                ),
                {"rows": json.dumps(fills, default=_json), "d": self.account_id},
            )
        if statuses:
            conn.execute(
                text(
                    "UPDATE trading.paper_orders p SET status = r.s FROM jsonb_to_recordset("
                    "CAST(:rows AS jsonb)) AS r(c text, s text) WHERE p.client_order_id = r.c"
                ),
                {"rows": json.dumps([{"c": c, "s": s} for c, s in statuses.items()])},
            )

    def _execute(
        self, order: OrderRow, bar: tuple[datetime, float, float], available: Decimal
    ) -> Execution:
        """Fill ``order`` at ``bar``'s open in exact money (the open converted once by
        :func:`prism.ledger.money.price`), cut to ``available`` cash."""
        time, open_price, volume = bar
        wanted = order.quantity if order.side == "buy" else -order.quantity
        costs = self.account
        lot = money.exact(costs.lot)
        share = getattr(costs, "participation", None)
        if share is not None:
            cap = money.exact(volume_cap(share, volume, costs.lot))
            wanted = min(abs(wanted), cap).copy_sign(wanted)
        price = money.fill_price(money.price(open_price), wanted, money.exact(costs.slippage_bps))
        bps, per_share = money.exact(costs.commission_bps), money.exact(costs.commission_per_share)
        signed = money.affordable(wanted, price, available, bps, lot, per_share)
        if signed == 0:
            return Execution(order, None, rest_cancelled=True)
        quantity = abs(signed)
        fill = FillRow(
            fill_id=f"{order.client_order_id}/1",
            client_order_id=order.client_order_id,
            time=time,
            quantity=quantity,
            price=price,
            commission=money.commission(signed, price, bps, per_share),
        )
        return Execution(order, fill, rest_cancelled=quantity < order.quantity)


def volume_cap(share: float, volume: float, lot: float) -> float:
    """Return the most a bar of ``volume`` lets an order fill at ``share`` participation,
    rounded down to whole lots."""
    lots = math.floor(share * volume / lot + 1e-9)
    return float(np.rint(lots * lot * 1e10) / 1e10)


def _json(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} as JSON")
