"""Rebalancing: the one rule, shared by the backtest and the live runner, that turns target
weights into order quantities.

Both engines call :func:`order_quantities` with the state at a bar's close, so replaying the
live runner over history reproduces the backtest's orders exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RebalanceRule:
    """How far a position may drift before it is traded, and how quantities are rounded.

    ``band``: skip a trade smaller than this fraction of equity (0.05 = 5%), except a close
    to zero, which always goes through. ``lot``: quantities are whole multiples of it, rounded
    toward zero. ``cost_rate``: commission + slippage as a fraction of notional, and
    ``cost_per_share`` the per-share commission, both reserved when sizing buys so that an
    all-in buy does not overdraw cash.
    """

    band: float = 0.05
    lot: float = 0.0001
    cost_rate: float = 0.0
    cost_per_share: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AccountConfig:
    """Capital and costs of an account, shared by backtests and live deployments.

    Costs are basis points of notional (slippage: of price); ``band`` and ``lot`` feed the
    :class:`RebalanceRule`; ``max_leverage`` caps the sum of absolute target weights.
    """

    capital: float = 1_000_000.0
    commission_bps: float = 1.0
    commission_per_share: float = 0.0
    slippage_bps: float = 2.0
    band: float = 0.05
    lot: float = 0.0001
    max_leverage: float = 1.0

    def rule(self) -> RebalanceRule:
        """Return the rebalancing rule these costs imply."""
        return RebalanceRule(
            band=self.band,
            lot=self.lot,
            cost_rate=(self.commission_bps + self.slippage_bps) / 10_000.0,
            cost_per_share=self.commission_per_share,
        )


def cap_leverage(weights: np.ndarray, max_leverage: float) -> np.ndarray:
    """Return target weights scaled down, per row, so their absolute sum is at most the cap.

    ``weights`` is one row (symbols) or a (time × symbol) panel; NaN counts as zero.
    """
    values = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)
    gross = np.abs(values).sum(axis=-1, keepdims=True)
    scale = np.where(gross > max_leverage, max_leverage / np.where(gross > 0, gross, 1.0), 1.0)
    return values * scale


def order_quantities(
    targets: Mapping[str, float],
    holdings: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    rule: RebalanceRule,
) -> dict[str, float]:
    """Return the signed quantity to trade per symbol to move ``holdings`` toward ``targets``.

    ``targets`` are weights of ``equity``; ``prices`` the prices the decision is made at. A
    symbol held but absent from ``targets`` is closed. A symbol without a finite positive price
    is left alone (there is nothing to size it with). Zero quantities are omitted.
    """
    orders: dict[str, float] = {}
    for symbol in sorted(set(targets) | {s for s, q in holdings.items() if q != 0}):
        price = prices.get(symbol, math.nan)
        if not (math.isfinite(price) and price > 0):
            continue
        held = holdings.get(symbol, 0.0)
        weight = targets.get(symbol, 0.0)
        if weight == 0.0:
            delta = -held
        else:
            gap_value = weight * equity - held * price
            if abs(gap_value) <= rule.band * equity:
                continue
            unit_cost = (
                price * (1.0 + rule.cost_rate) + rule.cost_per_share if gap_value > 0 else price
            )
            delta = _round_to_lot(gap_value / unit_cost, rule.lot)
        if delta != 0.0:
            orders[symbol] = delta
    return orders


def _round_to_lot(quantity: float, lot: float) -> float:
    """Round toward zero to whole lots, then to 1e-10 (the compiled backtest does the same)."""
    lots = math.floor(abs(quantity) / lot + 1e-9)
    return math.copysign(float(np.rint(lots * lot * 1e10) / 1e10), quantity) if lots else 0.0


def fill_price(open_price: float, quantity: float, slippage_bps: float) -> float:
    """Return the price a market order of ``quantity`` fills at: the open, worse by slippage."""
    return open_price * (1.0 + math.copysign(slippage_bps, quantity) / 10_000.0)


def commission(
    quantity: float, price: float, commission_bps: float, per_share: float = 0.0
) -> float:
    """Return the commission on a fill: basis points of its notional plus a per-share fee."""
    return abs(quantity) * price * commission_bps / 10_000.0 + abs(quantity) * per_share


def affordable(
    quantity: float,
    price: float,
    cash: float,
    commission_bps: float,
    lot: float,
    per_share: float = 0.0,
) -> float:
    """Return the part of a fill that cash pays for: a buy is cut to what ``cash`` covers,
    commission included, rounded down to whole lots; a sell is never cut.

    Both engines fill sells before buys within a bar, so a rebalance's sale funds its purchase.
    """
    if quantity <= 0:
        return quantity
    cost_per_unit = price * (1.0 + commission_bps / 10_000.0) + per_share
    if quantity * cost_per_unit <= cash:
        return quantity
    return _round_to_lot(max(cash, 0.0) / cost_per_unit, lot)
