"""The steps of one live trading cycle, which :func:`prism.live.cycle.run_cycle` composes:

- :func:`recover_pending` — settle orders a crashed cycle recorded but may not have sent, by
  asking the broker for their client order id;
- :func:`fill_open_orders` — ask the broker for fills of orders sent earlier, book them;
- :func:`snapshot` — value the portfolio at the bar's close;
- :func:`decide` — refuse bars with open gaps or a stale feed (:func:`check_data`), run the
  strategy on the newest bars, size orders with the backtest's own rebalancing rule, pass them
  through the pre-trade risk checks, record one audit decision per symbol and send the orders.

Repeating a step for the same bar changes nothing: orders, fills, decisions and snapshots are
keyed by the deployment, the symbol and the bar time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from prism import ledger
from prism.backtest.portfolio import AccountConfig, cap_leverage
from prism.brokers.port import Broker, submit_all, submitted
from prism.core.errors import DataUnavailable
from prism.core.events import record_event
from prism.core.settings import Settings
from prism.data.health import quality_problems, refusal
from prism.data.store import read_bars
from prism.ledger import OrderRow, money
from prism.live.risk import Book, OrderCheck, RiskLimits, check_order

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveConfig(AccountConfig):
    """What a deployment trades, on top of its capital and costs."""

    deployment: str
    symbols: tuple[str, ...]
    timeframe: str = "1d"
    allow_gaps: bool = False
    """Trade even on bars with open gaps or a stale feed (the data-quality gate is skipped)."""
    participation: float | None = None
    """Paper broker: an order fills at most this share of its fill bar's volume, in whole lots,
    and the rest is cancelled (the next cycle trades toward the target again); None: no cap."""

    @classmethod
    def from_settings(cls, settings: Settings, symbols: tuple[str, ...]) -> LiveConfig:
        """Return the config of the settings' deployment trading ``symbols``."""
        return cls(
            deployment=settings.deployment,
            symbols=symbols,
            capital=settings.capital,
            commission_bps=settings.commission_bps,
            commission_per_share=settings.commission_per_share,
            slippage_bps=settings.slippage_bps,
        )


@dataclass(frozen=True)
class LiveStrategy:
    """A loaded model and where it came from (name, version), as orders record it."""

    strategy: str
    model_name: str
    model_version: str
    warmup: int
    predict: Any


def client_order_id(deployment: str, symbol: str, decided_at: datetime) -> str:
    """Return the order id that makes one order per deployment, symbol and bar."""
    return f"{deployment}:{symbol}:{pd.Timestamp(decided_at).strftime('%Y%m%dT%H%M%S')}"


def fill_open_orders(engine: Engine, broker: Broker, deployment: str, as_of: datetime) -> int:
    """Book what the broker did with open orders up to ``as_of``; return the new fills.

    All of the cycle's fills and cancellations are booked in one transaction."""
    with engine.connect() as conn:
        orders = ledger.open_orders(conn, deployment)
        available = ledger.cash(conn, deployment)
    if not orders:
        return 0
    executions = broker.executions(orders, available, as_of)
    if not executions:
        return 0
    with engine.begin() as conn:
        booked = ledger.apply_fills(
            conn,
            deployment,
            [(e.order.side, e.order.symbol, e.fill) for e in executions if e.fill is not None],
        )
        ledger.cancel_rests(conn, [e.order.client_order_id for e in executions if e.rest_cancelled])
    checkpoint("after_fill", len(executions))
    return booked


def check_data(
    engine: Engine,
    config: LiveConfig,
    bars: pd.DataFrame,
    as_of: datetime,
    now: datetime | None = None,
) -> None:
    """The cycle's data-quality gate: refuse, with a ``data_quality_refused`` system event,
    to trade on ``bars`` with open gaps or on a feed stale at ``now`` (default ``as_of``),
    unless the deployment allows gaps."""

    if config.allow_gaps:
        return
    start = pd.Timestamp(bars["time"].min()).to_pydatetime()
    gaps, stale = quality_problems(
        engine, list(config.symbols), config.timeframe, start, as_of, now or as_of
    )
    if not (gaps or stale):
        return
    message = refusal(gaps, stale, "set allow_gaps on the deployment to trade on them anyway")
    record_event(
        engine,
        "data_quality_refused",
        "error",
        "live",
        f"{config.deployment} at {as_of}: {message}",
        {
            "deployment": config.deployment,
            "as_of": as_of,
            "gaps": [gap.as_dict() for gap in gaps],
            "stale": [s.symbol for s in stale],
        },
    )
    raise DataUnavailable(f"{config.deployment} at {as_of}: {message}")


def checkpoint(step: str, orders: int = 1) -> None:
    """Mark that the cycle has made ``step`` durable for ``orders`` orders: ``after_fill`` (the
    cycle's fills booked), ``after_fills``, ``after_snapshot``, ``after_record_pending``,
    ``after_submit`` (the cycle's orders sent) and ``after_mark_sent``. Logged at debug level;
    the crash-safety test replaces this function in a child process to kill it at each step."""
    log.debug("cycle step %s done for %d order(s)", step, orders)


def recover_pending(engine: Engine, broker: Broker, deployment: str, as_of: datetime) -> int:
    """Settle orders recorded as ``pending`` (a cycle stopped between recording and sending,
    or between sending and confirming): ask the broker by client id and record what it knows.
    An order the broker never received is sent now if it is for ``as_of``'s bar, and rejected
    as superseded if it is for an older bar. Returns how many were settled."""
    with engine.connect() as conn:
        pending = ledger.pending_orders(conn, deployment)
    if not pending:
        return 0
    changes: list[tuple[str, str, str | None]] = []
    resend: list[OrderRow] = []
    for order in pending:
        known = broker.lookup(order.client_order_id)
        if known is None and pd.Timestamp(order.decided_at) == pd.Timestamp(as_of):
            resend.append(order)
        elif known is None or known.status == "rejected":
            changes.append((order.client_order_id, "rejected", None))
        else:
            changes.append((order.client_order_id, "sent", known.broker_order_id))
    sent = submit_all(broker, resend)
    changes += submitted(sent)
    with engine.begin() as conn:
        ledger.set_order_statuses(conn, changes)
    return len(pending)


def decide(
    engine: Engine,
    broker: Broker,
    strategy: LiveStrategy,
    config: LiveConfig,
    as_of: datetime,
    now: datetime | None = None,
    limits: RiskLimits | None = None,
    min_notional: float = 0.0,
) -> list[OrderRow]:
    """Compute targets at ``as_of``'s close, record decisions and send orders; return them.

    Bars with open gaps, or a feed stale at ``now`` (default ``as_of``), stop the cycle
    before anything is decided (see :func:`check_data`). Orders under ``min_notional`` (except
    closes) are skipped; with ``limits`` each order passes the pre-trade risk checks, which may
    trim or reject it. Orders and their decisions are recorded as ``pending`` in one
    transaction, then sent, then marked ``sent``: a crash in between is settled by
    :func:`recover_pending`, never by a second order.
    """
    bars = read_bars(
        engine,
        list(config.symbols),
        end=as_of,
        timeframe=config.timeframe,
        last=strategy.warmup + 1,
    )
    check_data(engine, config, bars, as_of, now)
    latest = bars[bars["time"] == pd.Timestamp(as_of)]
    weights = strategy.predict(bars)
    weights = weights[weights["time"] == pd.Timestamp(as_of)].set_index("symbol")["weight"]
    closes = {
        str(s): money.price(c) for s, c in zip(latest["symbol"], latest["close"], strict=True)
    }
    orders: list[OrderRow] = []
    decisions: list[dict[str, Any]] = []
    with engine.begin() as conn:
        held = ledger.holdings(conn, config.deployment)
        missing = sorted(set(held) - set(closes))
        if missing:
            raise DataUnavailable(
                f"no {config.timeframe} bar at {as_of} for held {', '.join(missing)}; "
                "cannot value the portfolio, so no orders are sent"
            )
        equity = ledger.cash(conn, config.deployment) + sum(
            (q * closes[s] for s, q in held.items()), money.ZERO
        )
        working = {
            s: q
            for s, q in ledger.working_quantities(conn, config.deployment).items()
            if s in closes
        }
        position = {
            s: held.get(s, money.ZERO) + working.get(s, money.ZERO)
            for s in held.keys() | working.keys()
        }
        names = sorted(closes)
        capped = cap_leverage(np.array([weights.get(s, 0.0) for s in names]), config.max_leverage)
        targets = {s: money.exact(float(w)) for s, w in zip(names, capped, strict=True)}
        quantities = size(config, targets, position, closes, equity)
        book = Book(equity, dict(position), closes)
        context = _Context(config, strategy, as_of, targets, held, working, closes, equity)
        ordered = sorted(set(config.symbols), key=lambda s: (quantities.get(s, 0) > 0, s))
        minimum = money.exact(min_notional)
        for symbol in ordered:
            quantity = quantities.get(symbol, money.ZERO)
            check = None
            skip = None
            if quantity and minimum and position.get(symbol, 0) + quantity != 0:
                notional = abs(quantity) * closes[symbol]
                if notional < minimum:
                    skip = f"order notional {notional:,.2f} under the minimum {minimum:,.2f}"
                    quantity = money.ZERO
            if quantity and limits is not None:
                check = check_order(symbol, quantity, book, limits, money.exact(config.lot))
                quantity = check.allowed
            order = None
            if quantity:
                order = OrderRow(
                    client_order_id=client_order_id(config.deployment, symbol, as_of),
                    deployment=config.deployment,
                    symbol=symbol,
                    side="buy" if quantity > 0 else "sell",
                    quantity=abs(quantity),
                    strategy=strategy.strategy,
                    model_name=strategy.model_name,
                    model_version=strategy.model_version,
                    decided_at=as_of,
                    broker=broker.name,
                )
                orders.append(order)
            decisions.append(context.decision(symbol, order, check, skip))
        recorded = ledger.insert_orders(conn, orders, status="pending")
        ledger.record_decisions(conn, decisions)
        ledger.record_signals(
            conn,
            [
                {
                    "time": as_of,
                    "deployment": config.deployment,
                    "symbol": symbol,
                    "strategy": strategy.strategy,
                    "model_name": strategy.model_name,
                    "model_version": strategy.model_version,
                    "value": float(weights.get(symbol, 0.0)),
                    "target_weight": float(targets[symbol]),
                }
                for symbol in names
            ],
        )
    checkpoint("after_record_pending")
    if not recorded:
        return recorded
    sent = submit_all(broker, recorded)
    checkpoint("after_submit", len(recorded))
    with engine.begin() as conn:
        ledger.set_order_statuses(conn, submitted(sent))
    checkpoint("after_mark_sent", len(recorded))
    return recorded


def size(
    config: AccountConfig,
    targets: dict[str, Decimal],
    held: dict[str, Decimal],
    closes: dict[str, Decimal],
    equity: Decimal,
) -> dict[str, Decimal]:
    """Return the exact order quantities moving ``held`` toward ``targets`` at ``closes`` by
    the account's rebalancing rule (:func:`prism.ledger.money.order_quantities`)."""
    rule = config.rule()
    return money.order_quantities(
        targets,
        held,
        closes,
        equity,
        band=money.exact(rule.band),
        lot=money.exact(rule.lot),
        cost_rate=(money.exact(config.commission_bps) + money.exact(config.slippage_bps))
        / money.BPS,
        cost_per_share=money.exact(rule.cost_per_share),
    )


@dataclass(frozen=True)
class _Context:
    """What every decision of one cycle shares."""

    config: LiveConfig
    strategy: LiveStrategy
    as_of: datetime
    targets: dict[str, Decimal]
    held: dict[str, Decimal]
    working: dict[str, Decimal]
    closes: dict[str, Decimal]
    equity: Decimal

    def decision(
        self, symbol: str, order: OrderRow | None, check: OrderCheck | None, skip: str | None
    ) -> dict[str, Any]:
        """Return the audit decision for ``symbol``: what was decided and why."""
        price = self.closes.get(symbol)
        risk: dict[str, Any] = {"passed": price is not None, "checks": ["price_available"]}
        if check is not None:
            risk = check.as_json()
        if price is None:
            action = "skip"
            reasoning = f"no {self.config.timeframe} bar for {symbol} at {self.as_of}"
        elif check is not None and check.outcome == "reject":
            action, reasoning = "reject", "risk limits: " + _breaches(check)
        elif skip is not None:
            action, reasoning = "skip", skip
        elif order is None:
            action, reasoning = "hold", "position within the rebalancing band of the target"
            if symbol in self.working:
                reasoning += f" once working orders for {self.working[symbol]:f} fill"
        else:
            action = order.side
            reasoning = (
                f"target weight {self.targets.get(symbol, 0):+.4f} of equity "
                f"{self.equity:,.2f}; held {self.held.get(symbol, 0):f}"
                + (f" ({self.working[symbol]:+f} working)" if symbol in self.working else "")
                + f", trading {order.quantity} at ~{price:,.2f}"
            )
            if check is not None and check.outcome == "trim":
                reasoning += f" (trimmed from {abs(check.requested):f}: {_breaches(check)})"
        return {
            "time": self.as_of,
            "deployment": self.config.deployment,
            "decision_type": "rebalance",
            "symbol": symbol,
            "model_name": self.strategy.model_name,
            "model_version": self.strategy.model_version,
            "signals": {
                "target_weight": _number(self.targets.get(symbol)),
                "close": _number(price),
                "held": float(self.held.get(symbol, money.ZERO)),
                "working": float(self.working.get(symbol, money.ZERO)),
                "equity": float(self.equity),
            },
            "risk_check": risk,
            "action": action,
            "reasoning": reasoning,
            "client_order_id": order.client_order_id if order else None,
        }


def _number(value: Decimal | None) -> float | None:
    """Return an exact figure as the JSON number an audit record shows."""
    return None if value is None else float(value)


def _breaches(check: OrderCheck) -> str:
    return ", ".join(f"{name} allows {cap:.6g}" for name, cap in check.breaches.items())


def record_skip(
    engine: Engine,
    config: LiveConfig,
    model_name: str | None,
    model_version: str | None,
    as_of: datetime,
    reason: str,
    checks: dict[str, Any] | None = None,
) -> None:
    """Record a ``skip`` decision for every symbol of the deployment at ``as_of``: the cycle
    decided not to trade (halted, stale data, circuit breaker) and says why."""
    with engine.begin() as conn:
        held = {s: float(q) for s, q in ledger.holdings(conn, config.deployment).items()}
        for symbol in sorted(set(config.symbols)):
            ledger.record_decision(
                conn,
                {
                    "time": as_of,
                    "deployment": config.deployment,
                    "decision_type": "rebalance",
                    "symbol": symbol,
                    "model_name": model_name,
                    "model_version": model_version,
                    "signals": {"held": held.get(symbol, 0.0)},
                    "risk_check": {"passed": False, **(checks or {})},
                    "action": "skip",
                    "reasoning": reason,
                    "client_order_id": None,
                },
            )


def latest_closes(
    conn: Connection, symbols: list[str], timeframe: str, as_of: datetime
) -> dict[str, Decimal]:
    """Return each symbol's close of its newest ``timeframe`` bar at or before ``as_of`` as
    money (:func:`prism.ledger.money.price`; one index lookup per symbol; symbols without such
    a bar are left out)."""
    rows = conn.execute(
        text(
            "SELECT s.symbol, b.close FROM "
            "(SELECT DISTINCT unnest(CAST(:s AS text[])) AS symbol) s "
            "CROSS JOIN LATERAL (SELECT close FROM market_data.ohlcv o WHERE o.symbol = s.symbol "
            "AND o.timeframe = :tf AND o.time <= :t ORDER BY o.time DESC LIMIT 1) b"
        ),
        {"s": symbols, "tf": timeframe, "t": as_of},
    ).all()
    return {str(symbol): money.price(close) for symbol, close in rows}


def snapshot(engine: Engine, config: LiveConfig, as_of: datetime) -> dict[str, Decimal]:
    """Value the portfolio at ``as_of``'s closes and store the snapshot; return it."""
    with engine.begin() as conn:
        closes = latest_closes(conn, list(config.symbols), config.timeframe, as_of)
        missing = sorted(set(config.symbols) - set(closes))
        if missing:
            raise DataUnavailable(
                f"no {config.timeframe} bars for {', '.join(missing)} up to {as_of}; "
                "cannot value the portfolio (run `prism data ingest` or check the symbols)"
            )
        return ledger.record_snapshot(conn, config.deployment, as_of, closes)


def from_pyfunc(model: Any, model_name: str, model_version: str) -> LiveStrategy:
    """Wrap a loaded Prism pyfunc model (``mlflow.pyfunc.load_model``) for :func:`decide`."""
    inner = model.unwrap_python_model()
    return LiveStrategy(
        strategy=inner.strategy,
        model_name=model_name,
        model_version=model_version,
        warmup=inner.warmup,
        predict=model.predict,
    )
