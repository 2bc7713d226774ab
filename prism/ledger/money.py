"""Exact money for live trading: where floats become ``Decimal``, and the execution and sizing
rules of :mod:`prism.backtest.portfolio` restated in ``Decimal``.

Prices stay float64 in the bar store and in the backtester's compiled loop. The live path
converts them once, at its boundary, with :func:`price`: the float's shortest repr (the figure
the source sent), quantised to :data:`~prism.ledger.accounts.PRICE_STEP` (1e-6) with
round-half-even. Parameters a person typed (risk limits, basis points, lots, bands) are read
with :func:`exact`, their shortest repr, so ``0.05`` is 5/100 and not the double nearest to it.
From there cash, equity, sizing, affordability and the circuit breaker's comparisons are exact:
no float is ever turned back into money.

The rules here are the backtest's (same order of operations, same rounding toward zero to whole
lots); the float versions keep a 1e-9 tolerance against float error that exact arithmetic does
not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from prism.ledger.accounts import PRICE_STEP

ZERO = Decimal(0)
BPS = Decimal(10_000)


def exact(value: float | int | str | Decimal) -> Decimal:
    """Return a typed parameter as a Decimal: a float by its shortest repr (``0.05`` → 0.05)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def price(value: float | Decimal) -> Decimal:
    """Return a bar price as money: its shortest repr, quantised to ``PRICE_STEP`` (the one
    place a float price becomes a Decimal)."""
    return exact(value).quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def to_lot(quantity: Decimal, lot: Decimal) -> Decimal:
    """Round ``quantity`` toward zero to whole multiples of ``lot``."""
    lots = (abs(quantity) / lot).to_integral_value(rounding=ROUND_DOWN)
    return (lots * lot).copy_sign(quantity) if lots else ZERO


def fill_price(open_price: Decimal, quantity: Decimal, slippage_bps: Decimal) -> Decimal:
    """Return the price a market order of ``quantity`` fills at: the open, worse by slippage,
    quantised to ``PRICE_STEP``."""
    slip = slippage_bps.copy_sign(quantity) if quantity else ZERO
    return (open_price * (1 + slip / BPS)).quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def commission(
    quantity: Decimal, fill: Decimal, commission_bps: Decimal, per_share: Decimal = ZERO
) -> Decimal:
    """Return the commission on a fill (basis points of notional plus a per-share fee),
    quantised to ``PRICE_STEP``."""
    fee = abs(quantity) * fill * commission_bps / BPS + abs(quantity) * per_share
    return fee.quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def affordable(
    quantity: Decimal,
    fill: Decimal,
    cash: Decimal,
    commission_bps: Decimal,
    lot: Decimal,
    per_share: Decimal = ZERO,
) -> Decimal:
    """Return the part of a fill that ``cash`` pays for: a buy is cut to what it covers,
    commission included, in whole lots; a sell is never cut."""
    if quantity <= 0:
        return quantity
    unit = fill * (1 + commission_bps / BPS) + per_share
    if quantity * unit <= cash:
        return quantity
    return to_lot(max(cash, ZERO) / unit, lot)


def order_quantities(
    targets: Mapping[str, Decimal],
    holdings: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    equity: Decimal,
    band: Decimal,
    lot: Decimal,
    cost_rate: Decimal,
    cost_per_share: Decimal = ZERO,
) -> dict[str, Decimal]:
    """Return the signed quantity to trade per symbol to move ``holdings`` toward ``targets``
    (weights of ``equity``), by the backtest's rebalancing rule: a symbol held but not targeted
    is closed; a trade within ``band`` of equity is skipped; a buy is sized on the price with
    costs; quantities are whole ``lot`` multiples. Symbols without a positive price are left
    alone; zero quantities are omitted."""
    orders: dict[str, Decimal] = {}
    for symbol in sorted(set(targets) | {s for s, q in holdings.items() if q != 0}):
        mark = prices.get(symbol)
        if mark is None or not mark > 0:
            continue
        held = holdings.get(symbol, ZERO)
        weight = targets.get(symbol, ZERO)
        if weight == 0:
            delta = -held
        else:
            gap = weight * equity - held * mark
            if abs(gap) <= band * equity:
                continue
            unit = mark * (1 + cost_rate) + cost_per_share if gap > 0 else mark
            delta = to_lot(gap / unit, lot)
        if delta != 0:
            orders[symbol] = delta
    return orders
