"""Pre-trade risk: the limits in ``config.risk_limits``, the checks each order passes through,
the circuit breaker, and the per-cycle risk snapshot.

Limits live in the database so a person can change them while the runner runs; every cycle
reads them again (:func:`load_limits`: :data:`DEFAULTS` for a key never stored). An order that
would breach a position or exposure limit is trimmed to what the limit leaves room for, rounded
down to the lot, or rejected when nothing is left; an order that only reduces a position is
never cut. A loss since the previous close beyond ``daily_loss_limit``, or a fall from peak
equity beyond ``max_drawdown``, trips the circuit breaker: the deployment halts until a person
resumes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text

from prism.backtest import metrics
from prism.core.errors import ConfigError
from prism.ledger.money import ZERO, exact, to_lot

DEFAULTS: dict[str, tuple[float, str]] = {
    "max_position_pct": (1.0, "largest position in one symbol, as a fraction of equity"),
    "max_gross_exposure": (1.5, "sum of absolute position values, as a fraction of equity"),
    "max_net_exposure": (1.5, "absolute sum of signed position values, as a fraction of equity"),
    "max_order_notional": (10_000_000.0, "largest single order, in account currency"),
    "daily_loss_limit": (
        0.05,
        "loss since the previous close, as a fraction of it; a breach halts the deployment",
    ),
    "max_drawdown": (
        0.25,
        "fall from the peak equity, as a fraction of it; a breach halts the deployment",
    ),
}
"""Every limit, its default and what it means; seeded into ``config.risk_limits``."""


@dataclass(frozen=True)
class RiskLimits:
    """The limits one cycle trades under (fractions of equity unless named in currency), as
    exact Decimals: a float given (or stored, as ``double precision``) is read by its shortest
    repr, the figure a person typed (:func:`prism.ledger.money.exact`), so a loss of exactly
    5% is not over a 5% limit."""

    max_position_pct: Decimal = Decimal("1.0")
    max_gross_exposure: Decimal = Decimal("1.5")
    max_net_exposure: Decimal = Decimal("1.5")
    max_order_notional: Decimal = Decimal("10000000")
    daily_loss_limit: Decimal = Decimal("0.05")
    max_drawdown: Decimal = Decimal("0.25")

    def __post_init__(self) -> None:
        for limit in fields(self):
            object.__setattr__(self, limit.name, exact(getattr(self, limit.name)))

    @classmethod
    def from_values(cls, values: Mapping[str, float | Decimal]) -> RiskLimits:
        """Return the limits in ``values`` (unknown keys are refused, missing ones default)."""
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"unknown risk limit {', '.join(unknown)} in config.risk_limits; "
                f"known limits: {', '.join(DEFAULTS)}"
            )
        bad = sorted(k for k, v in values.items() if not (math.isfinite(v) and v > 0))
        if bad:
            raise ConfigError(
                f"risk limit {', '.join(bad)} must be a positive number; "
                "fix it in config.risk_limits"
            )
        return cls(**{k: exact(v) for k, v in values.items()})


def seed_default_limits(conn: Connection) -> None:
    """Write any default limit missing from ``config.risk_limits`` (the owner's side: a
    deployment's creation and ``prism runner limits``; the runner's login may not write it)."""
    for key, (value, description) in DEFAULTS.items():
        conn.execute(
            text(
                "INSERT INTO config.risk_limits (key, value, description, updated_by) "
                "VALUES (:k, :v, :d, 'prism defaults') ON CONFLICT (key) DO NOTHING"
            ),
            {"k": key, "v": value, "d": description},
        )


def load_limits(conn: Connection, deployment: str | None = None) -> RiskLimits:
    """Return the limits in ``config.risk_limits`` (a default for any key not stored), with
    ``deployment``'s own overrides from ``config.deployment_risk_limits`` on top. Reads only."""
    values = {key: value for key, (value, _) in DEFAULTS.items()}
    rows = conn.execute(text("SELECT key, value FROM config.risk_limits")).all()
    values |= {key: float(value) for key, value in rows}
    if deployment is not None:
        own = conn.execute(
            text("SELECT key, value FROM config.deployment_risk_limits WHERE deployment = :d"),
            {"d": deployment},
        ).all()
        values |= {key: float(value) for key, value in own}
    return RiskLimits.from_values(values)


def set_limit(
    conn: Connection, key: str, value: float, by: str, deployment: str | None = None
) -> None:
    """Change one limit, globally or for ``deployment`` only (the next cycle trades under it)."""
    RiskLimits.from_values({key: value})
    if deployment is not None:
        seed_default_limits(conn)
        conn.execute(
            text(
                "INSERT INTO config.deployment_risk_limits (deployment, key, value, updated_by) "
                "VALUES (:d, :k, :v, :by) ON CONFLICT (deployment, key) DO UPDATE SET "
                "value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()"
            ),
            {"d": deployment, "k": key, "v": value, "by": by},
        )
        return
    conn.execute(
        text(
            "INSERT INTO config.risk_limits (key, value, description, updated_by) "
            "VALUES (:k, :v, :d, :by) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
            "updated_by = EXCLUDED.updated_by, updated_at = now()"
        ),
        {"k": key, "v": value, "d": DEFAULTS[key][1], "by": by},
    )


@dataclass
class Book:
    """Positions (quantity per symbol) valued at ``prices`` against ``equity``, all exact;
    updated as orders pass the checks, so each order is checked against the ones before it."""

    equity: Decimal
    positions: dict[str, Decimal]
    prices: dict[str, Decimal]

    def value(self, symbol: str) -> Decimal:
        """Return the signed value of the position in ``symbol``."""
        return self.positions.get(symbol, ZERO) * self.prices[symbol]

    def gross(self) -> Decimal:
        """Return the sum of absolute position values."""
        return sum((abs(self.value(s)) for s in self.positions), ZERO)

    def net(self) -> Decimal:
        """Return the sum of signed position values."""
        return sum((self.value(s) for s in self.positions), ZERO)


@dataclass(frozen=True)
class OrderCheck:
    """What the checks made of one order: ``pass``, ``trim`` or ``reject``, and why."""

    symbol: str
    requested: Decimal
    allowed: Decimal
    outcome: str
    breaches: dict[str, Decimal] = field(default_factory=dict)
    """Each limit that cut the order, with the most it allowed (absolute quantity)."""

    def as_json(self) -> dict[str, Any]:
        """Return the check as audit.decisions' ``risk_check`` stores it."""
        return {
            "passed": self.outcome == "pass",
            "outcome": self.outcome,
            "requested": float(self.requested),
            "allowed": float(self.allowed),
            "breaches": {name: float(cap) for name, cap in self.breaches.items()},
            "checks": [
                "max_order_notional",
                "max_position_pct",
                "max_gross_exposure",
                "max_net_exposure",
            ],
        }


def _room(limit_value: Decimal, used_elsewhere: Decimal, price: Decimal) -> Decimal:
    """Return the largest absolute position (quantity) that keeps the total within the limit."""
    return max(limit_value - used_elsewhere, ZERO) / price


def check_order(
    symbol: str, quantity: Decimal, book: Book, limits: RiskLimits, lot: Decimal
) -> OrderCheck:
    """Check a signed order against the limits, trimming it toward zero to fit; apply what
    passes to ``book``.

    An order that does not increase the absolute position is only held to the order-notional
    limit. Trims round down to whole ``lot`` units. Exact: an order exactly at a limit passes.
    """
    price = book.prices[symbol]
    held = book.positions.get(symbol, ZERO)
    equity = book.equity
    direction = Decimal(1).copy_sign(quantity)
    caps: dict[str, Decimal] = {"max_order_notional": limits.max_order_notional / price}
    if abs(held + quantity) > abs(held):
        own = abs(book.value(symbol))
        net_elsewhere = book.net() - book.value(symbol)
        target_caps = {
            "max_position_pct": limits.max_position_pct * equity / price,
            "max_gross_exposure": _room(
                limits.max_gross_exposure * equity, book.gross() - own, price
            ),
            "max_net_exposure": _room(
                limits.max_net_exposure * equity, direction * net_elsewhere, price
            ),
        }
        same_side = held * direction >= 0
        for name, largest in target_caps.items():
            caps[name] = max(largest - abs(held), ZERO) if same_side else abs(held) + largest
    allowed = abs(quantity)
    breaches: dict[str, Decimal] = {}
    for name, cap in caps.items():
        if cap < abs(quantity):
            breaches[name] = cap
            allowed = min(allowed, cap)
    if breaches:
        allowed = to_lot(allowed, lot)
    outcome = "pass" if not breaches else ("trim" if allowed > 0 else "reject")
    signed = direction * allowed
    if signed:
        book.positions[symbol] = held + signed
    return OrderCheck(symbol, quantity, signed, outcome, breaches)


@dataclass(frozen=True)
class BreakerCheck:
    """The circuit breaker's reading at one close."""

    daily_loss: Decimal
    drawdown: Decimal
    tripped: list[str]

    def reason(self, limits: RiskLimits) -> str:
        """Return why the breaker tripped, with the figures."""
        parts = []
        if "daily_loss_limit" in self.tripped:
            parts.append(
                f"daily loss {self.daily_loss:.2%} over the limit {limits.daily_loss_limit:.2%}"
            )
        if "max_drawdown" in self.tripped:
            parts.append(f"drawdown {self.drawdown:.2%} over the limit {limits.max_drawdown:.2%}")
        return "circuit breaker: " + "; ".join(parts)


def check_breaker(
    equity: Decimal, previous_close: Decimal, peak: Decimal, limits: RiskLimits
) -> BreakerCheck:
    """Return the loss since ``previous_close`` and the fall from ``peak`` (exact fractions,
    positive when losing) and which of the two limits they exceed (a loss exactly at a limit
    does not trip it)."""
    daily_loss = max(ZERO, (previous_close - equity) / previous_close)
    peak = max(peak, equity)
    drawdown = max(ZERO, (peak - equity) / peak)
    tripped = [
        name
        for name, used, limit in (
            ("daily_loss_limit", daily_loss, limits.daily_loss_limit),
            ("max_drawdown", drawdown, limits.max_drawdown),
        )
        if used > limit
    ]
    return BreakerCheck(daily_loss, drawdown, tripped)


def risk_snapshot(
    equity_history: pd.Series, book: Book, limits: RiskLimits, breaker: BreakerCheck
) -> dict[str, Any]:
    """Return the row of ``trading.risk_snapshots`` for the newest point of ``equity_history``:
    exposures, historical VaR/CVaR (95%, of one-bar returns; None with fewer than 20 returns),
    drawdown, and each limit's utilization (used / limit)."""
    enough = len(equity_history) > 20
    equity = book.equity
    largest = max((abs(book.value(s)) for s in book.positions), default=ZERO)
    gross, net = book.gross(), book.net()
    return {
        "gross_exposure": round(gross, 4),
        "net_exposure": round(net, 4),
        "value_at_risk": metrics.value_at_risk(equity_history) if enough else None,
        "conditional_value_at_risk": (
            metrics.conditional_value_at_risk(equity_history) if enough else None
        ),
        "drawdown": float(breaker.drawdown),
        "limit_utilization": {
            "max_position_pct": float(largest / equity / limits.max_position_pct),
            "max_gross_exposure": float(gross / equity / limits.max_gross_exposure),
            "max_net_exposure": float(abs(net) / equity / limits.max_net_exposure),
            "daily_loss_limit": float(breaker.daily_loss / limits.daily_loss_limit),
            "max_drawdown": float(breaker.drawdown / limits.max_drawdown),
        },
    }


def record_risk_snapshot(
    conn: Connection, deployment: str, time: datetime, snapshot: dict[str, Any]
) -> None:
    """Write (or rewrite, on a repeated cycle) the deployment's risk snapshot at ``time``."""

    conn.execute(
        text(
            "INSERT INTO trading.risk_snapshots (time, deployment, gross_exposure, net_exposure, "
            "value_at_risk, conditional_value_at_risk, drawdown, limit_utilization) VALUES "
            "(:time, :d, :gross_exposure, :net_exposure, :value_at_risk, "
            ":conditional_value_at_risk, :drawdown, CAST(:limit_utilization AS jsonb)) "
            "ON CONFLICT (deployment, time) DO UPDATE SET "
            "gross_exposure = EXCLUDED.gross_exposure, net_exposure = EXCLUDED.net_exposure, "
            "value_at_risk = EXCLUDED.value_at_risk, "
            "conditional_value_at_risk = EXCLUDED.conditional_value_at_risk, "
            "drawdown = EXCLUDED.drawdown, limit_utilization = EXCLUDED.limit_utilization"
        ),
        {
            **snapshot,
            "time": time,
            "d": deployment,
            "limit_utilization": json.dumps(snapshot["limit_utilization"]),
        },
    )
