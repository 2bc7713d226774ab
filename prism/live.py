"""One live trading cycle, in three idempotent steps the runner's Prefect flow composes:

1. :func:`fill_open_orders` — ask the broker for fills of orders sent earlier, book them;
2. :func:`decide` — run the strategy on the newest bars, size orders with the backtest's own
   rebalancing rule, record one audit decision per symbol and send the orders;
3. :func:`snapshot` — value the portfolio at the bar's close.

Repeating a cycle for the same bar changes nothing: orders, fills, decisions and snapshots are
keyed by the deployment, the symbol and the bar time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from prism import ledger
from prism.broker import Broker
from prism.config import Settings
from prism.data.store import read_bars
from prism.errors import DataUnavailable
from prism.ledger import OrderRow
from prism.portfolio import AccountConfig, cap_leverage, order_quantities


@dataclass(frozen=True, kw_only=True)
class LiveConfig(AccountConfig):
    """What a deployment trades, on top of its capital and costs."""

    deployment: str
    symbols: tuple[str, ...]
    timeframe: str = "1d"
    allow_gaps: bool = False
    """Trade even on bars with open gaps or a stale feed (the data-quality gate is skipped)."""

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
    """Book what the broker did with open orders up to ``as_of``; return the new fills."""
    with engine.connect() as conn:
        orders = ledger.open_orders(conn, deployment)
        available = ledger.cash(conn, deployment)
    booked = 0
    for execution in broker.executions(orders, available, as_of):
        order = execution.order
        with engine.begin() as conn:
            if execution.fill is not None:
                booked += ledger.apply_fill(
                    conn, deployment, order.side, order.symbol, execution.fill
                )
            if execution.rest_cancelled:
                ledger.cancel_rest(conn, order.client_order_id)
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
    from prism.data.health import quality_problems, refusal
    from prism.events import record_event

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


def decide(
    engine: Engine,
    broker: Broker,
    strategy: LiveStrategy,
    config: LiveConfig,
    as_of: datetime,
    now: datetime | None = None,
) -> list[OrderRow]:
    """Compute targets at ``as_of``'s close, record decisions and send orders; return them.

    Bars with open gaps, or a feed stale at ``now`` (default ``as_of``), stop the cycle
    before anything is decided (see :func:`check_data`).
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
    closes = {str(s): float(c) for s, c in zip(latest["symbol"], latest["close"], strict=True)}
    sent: list[OrderRow] = []
    with engine.begin() as conn:
        held = {s: float(q) for s, q in ledger.holdings(conn, config.deployment).items()}
        missing = sorted(set(held) - set(closes))
        if missing:
            raise DataUnavailable(
                f"no {config.timeframe} bar at {as_of} for held {', '.join(missing)}; "
                "cannot value the portfolio, so no orders are sent"
            )
        equity = float(ledger.cash(conn, config.deployment)) + sum(
            q * closes[s] for s, q in held.items()
        )
        names = sorted(closes)
        capped = cap_leverage(np.array([weights.get(s, 0.0) for s in names]), config.max_leverage)
        targets = dict(zip(names, map(float, capped), strict=True))
        quantities = order_quantities(targets, held, closes, equity, config.rule())
        for symbol in sorted(set(config.symbols)):
            quantity = quantities.get(symbol, 0.0)
            order = None
            if quantity:
                order = OrderRow(
                    client_order_id=client_order_id(config.deployment, symbol, as_of),
                    deployment=config.deployment,
                    symbol=symbol,
                    side="buy" if quantity > 0 else "sell",
                    quantity=Decimal(repr(abs(quantity))),
                    strategy=strategy.strategy,
                    model_name=strategy.model_name,
                    model_version=strategy.model_version,
                    decided_at=as_of,
                    broker=broker.name,
                )
                if ledger.insert_order(conn, order, broker.submit(order)):
                    sent.append(order)
            ledger.record_decision(
                conn,
                _decision(config, strategy, as_of, symbol, targets, held, closes, equity, order),
            )
    return sent


def _decision(
    config: LiveConfig,
    strategy: LiveStrategy,
    as_of: datetime,
    symbol: str,
    targets: dict[str, float],
    held: dict[str, float],
    closes: dict[str, float],
    equity: float,
    order: OrderRow | None,
) -> dict[str, Any]:
    price = closes.get(symbol)
    if price is None:
        action, reasoning = "skip", f"no {config.timeframe} bar for {symbol} at {as_of}"
    elif order is None:
        action, reasoning = "hold", "position within the rebalancing band of the target"
    else:
        action = order.side
        reasoning = (
            f"target weight {targets.get(symbol, 0.0):+.4f} of equity {equity:,.2f}; "
            f"held {held.get(symbol, 0.0):g}, trading {order.quantity} at ~{price:,.2f}"
        )
    return {
        "time": as_of,
        "deployment": config.deployment,
        "decision_type": "rebalance",
        "symbol": symbol,
        "model_name": strategy.model_name,
        "model_version": strategy.model_version,
        "signals": {
            "target_weight": targets.get(symbol),
            "close": price,
            "held": held.get(symbol, 0.0),
            "equity": equity,
        },
        "risk_check": {"passed": price is not None, "checks": ["price_available"]},
        "action": action,
        "reasoning": reasoning,
        "client_order_id": order.client_order_id if order else None,
    }


def snapshot(engine: Engine, config: LiveConfig, as_of: datetime) -> dict[str, Decimal]:
    """Value the portfolio at ``as_of``'s closes and store the snapshot; return it."""
    bars = read_bars(engine, list(config.symbols), end=as_of, timeframe=config.timeframe, last=1)
    marks = {
        str(s): ledger.to_decimal(float(c))
        for s, c in zip(bars["symbol"], bars["close"], strict=True)
    }
    with engine.begin() as conn:
        return ledger.record_snapshot(conn, config.deployment, as_of, marks)


def replay_times(
    engine: Engine, symbols: list[str], bars: int, timeframe: str = "1d"
) -> list[datetime]:
    """Return the times of the last ``bars`` bars stored for ``symbols`` (union, ascending)."""
    frame = read_bars(engine, symbols, timeframe=timeframe, last=bars)
    times = sorted(frame["time"].unique())[-bars:]
    return [pd.Timestamp(t).to_pydatetime() for t in times]


def load_live_strategy(settings: Settings, alias: str) -> LiveStrategy:
    """Load the model version ``alias`` points at, ready for :func:`decide`."""
    from prism.registry import load_champion

    info, model = load_champion(settings, alias)
    inner = model.unwrap_python_model()  # type: ignore[attr-defined]
    return LiveStrategy(
        strategy=inner.strategy,
        model_name=info.name,
        model_version=info.version,
        warmup=inner.warmup,
        predict=model.predict,  # type: ignore[attr-defined]
    )
