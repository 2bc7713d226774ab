"""The backtester's inner loop, compiled with numba.

It is :mod:`prism.backtest.portfolio`'s rules (``order_quantities``, ``affordable``, ``fill_price``,
``commission``) written once more as array code, operation for operation, so that the compiled
backtest and the live runner (which calls the Python rules) produce the same orders; the
integration test that replays the runner against a backtest holds them to it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _round_to_lot(quantity: float, lot: float) -> float:
    lots = math.floor(abs(quantity) / lot + 1e-9)
    if lots == 0:
        return 0.0
    return math.copysign(np.rint(lots * lot * 1e10) / 1e10, quantity)


@njit(cache=True, inline="always")
def _size_at_fill(
    prices: np.ndarray,
    pending: np.ndarray,
    targets: np.ndarray,
    holdings: np.ndarray,
    last_close: np.ndarray,
    cash: float,
    costs: np.ndarray,
    on_change: bool,
) -> None:
    """Re-size each pending order so it reaches its target weight of the equity marked at
    ``prices``, paying the slipped price plus commission (vectorbt's and backtesting.py's
    convention: the order knows the price it fills at)."""
    lot = costs[3]
    equity = cash
    for j in range(prices.size):
        if holdings[j] != 0.0:
            equity += holdings[j] * (prices[j] if math.isfinite(prices[j]) else last_close[j])
    for j in range(prices.size):
        if pending[j] == 0.0 or not math.isfinite(prices[j]):
            continue
        if targets[j] == 0.0:
            pending[j] = -holdings[j]
            continue
        gap = targets[j] * equity - holdings[j] * prices[j]
        pending[j] = _round_to_lot(
            gap / _unit_cost(prices[j], gap, targets[j], costs, on_change), lot
        )


@njit(cache=True, inline="always")
def _unit_cost(
    price: float, gap: float, target: float, costs: np.ndarray, on_change: bool
) -> float:
    """Return what one unit of an order worth ``gap`` costs at ``price``: slipped, plus the
    commission reserved when the order grows the position (buys only when rebalancing on a
    band; buys and short sales alike when trading on target changes, as the signal engines
    do), so that all-in orders do not overdraw."""
    slipped = price * (1.0 + math.copysign(costs[2], gap) / 10_000.0)
    grows = gap * target > 0 if on_change else gap > 0
    return slipped * (1.0 + costs[0] / 10_000.0) + costs[1] if grows else slipped


@njit(cache=True, inline="always")
def _execute(
    t: int,
    prices: np.ndarray,
    pending: np.ndarray,
    decided: np.ndarray,
    holdings: np.ndarray,
    cash: float,
    fills: np.ndarray,
    n_fills: int,
    costs: np.ndarray,
) -> tuple[float, int]:
    """Fill pending orders at ``prices`` (sells first); return the new cash and fill count."""
    commission_bps, per_share, slippage_bps, lot = costs[0], costs[1], costs[2], costs[3]
    for pass_ in range(2):
        sells = pass_ == 0
        for j in range(prices.size):
            wanted = pending[j]
            if wanted == 0.0 or (wanted < 0) != sells or not math.isfinite(prices[j]):
                continue
            pending[j] = 0.0
            price = prices[j] * (1.0 + math.copysign(slippage_bps, wanted) / 10_000.0)
            quantity = wanted
            if wanted > 0:
                unit = price * (1.0 + commission_bps / 10_000.0) + per_share
                if wanted * unit > cash:
                    quantity = _round_to_lot(max(cash, 0.0) / unit, lot)
            if quantity == 0.0:
                continue
            fee = abs(quantity) * price * commission_bps / 10_000.0 + abs(quantity) * per_share
            cash -= quantity * price + fee
            holdings[j] += quantity
            fills[n_fills, 0] = t
            fills[n_fills, 1] = j
            fills[n_fills, 2] = quantity
            fills[n_fills, 3] = price
            fills[n_fills, 4] = fee
            fills[n_fills, 5] = decided[j]
            n_fills += 1
    return cash, n_fills


@njit(cache=True, inline="always")
def _mark(
    t: int, closes: np.ndarray, last_close: np.ndarray, holdings: np.ndarray, cash: float
) -> float:
    """Mark holdings at the last closes; return equity."""
    value = 0.0
    for j in range(holdings.size):
        if math.isfinite(closes[t, j]):
            last_close[j] = closes[t, j]
        if holdings[j] != 0.0:
            value += holdings[j] * last_close[j]
    return cash + value


@njit(cache=True, inline="always")
def _any_pending(pending: np.ndarray) -> bool:
    for j in range(pending.size):  # noqa: SIM110 - numba compiles loops, not generators
        if pending[j] != 0.0:
            return True
    return False


@njit(cache=True)
def cap_leverage(weights: np.ndarray, max_leverage: float) -> np.ndarray:
    """Return (time × symbol) weights, NaN as 0, each row scaled down so that its absolute sum
    is at most ``max_leverage`` (the compiled twin of
    :func:`prism.backtest.portfolio.cap_leverage`).

    ``weights`` itself comes back when no row needs a change (no copy of a large panel)."""
    if not _needs_cap(weights, max_leverage):
        return weights
    out = np.empty_like(weights)
    for t in range(weights.shape[0]):
        gross = 0.0
        for j in range(weights.shape[1]):
            w = weights[t, j]
            w = 0.0 if math.isnan(w) else w
            out[t, j] = w
            gross += abs(w)
        if gross > max_leverage:
            for j in range(weights.shape[1]):
                out[t, j] *= max_leverage / gross
    return out


@njit(cache=True)
def _needs_cap(weights: np.ndarray, max_leverage: float) -> bool:
    for t in range(weights.shape[0]):
        gross = 0.0
        for j in range(weights.shape[1]):
            if math.isnan(weights[t, j]):
                return True
            gross += abs(weights[t, j])
        if gross > max_leverage:
            return True
    return False


def simulate(
    opens: np.ndarray,
    closes: np.ndarray,
    weights: np.ndarray,
    capital: float,
    costs: np.ndarray,
    band: float,
    at_close: bool,
    size_at_fill: bool,
    on_change: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step through (time × symbol) panels; return equity, holdings and fills.

    ``costs`` is (commission in bps, commission per share, slippage in bps, lot). Orders decided
    at a bar's close fill at the next bar's open, or at that same close when ``at_close``.
    Their quantity is fixed at the decision, from the close (as live), unless ``size_at_fill``.
    Fills are rows of (bar index filled, symbol index, quantity, price, commission, bar index
    decided). NaN opens or closes mean the symbol has no bar then.

    A position is traded whenever it drifts more than ``band`` of equity from its target, or,
    with ``on_change``, only when its target weight changes (held otherwise, as a signal engine
    holds it): a change of side then closes the position in one fill and opens the new one in
    another, sized from the equity left after the close.

    The outputs are allocated here, by numpy, whose large blocks are backed by huge pages:
    allocated inside the compiled loop, a million bars cost more in page faults than in work.
    """
    n_bars, n_symbols = opens.shape
    equity = np.empty(n_bars)
    held = np.empty((n_bars, n_symbols))
    fills = np.empty(((2 if on_change else 1) * n_bars * n_symbols, 6))
    modes = np.array([band, float(at_close), float(size_at_fill), float(on_change)])
    n_fills = _run(opens, closes, weights, capital, costs, modes, equity, held, fills)
    return equity, held, fills[:n_fills]


@njit(cache=True, nogil=True)
def _run(
    opens: np.ndarray,
    closes: np.ndarray,
    weights: np.ndarray,
    capital: float,
    costs: np.ndarray,
    modes: np.ndarray,
    equity: np.ndarray,
    held: np.ndarray,
    fills: np.ndarray,
) -> int:
    """Fill :func:`simulate`'s outputs in place; return the number of fills. ``modes`` is
    (band, at close, size at fill, on change)."""
    n_bars, n_symbols = opens.shape
    band, at_close, size_at_fill, on_change = modes[0], modes[1] > 0, modes[2] > 0, modes[3] > 0
    commission_bps, per_share, slippage_bps, lot = costs[0], costs[1], costs[2], costs[3]
    cost_rate = (commission_bps + slippage_bps) / 10_000.0
    cash = capital
    holdings = np.zeros(n_symbols)
    last_close = np.full(n_symbols, np.nan)
    pending = np.zeros(n_symbols)
    closing = np.zeros(n_symbols)
    targets = np.zeros(n_symbols)
    decided = np.full(n_symbols, -1)
    n_fills = 0
    waiting = False
    for t in range(n_bars):
        if waiting and not at_close:
            cash, n_fills = _execute(
                t, opens[t], closing, decided, holdings, cash, fills, n_fills, costs
            )
            if size_at_fill:
                _size_at_fill(
                    opens[t], pending, targets, holdings, last_close, cash, costs, on_change
                )
            cash, n_fills = _execute(
                t, opens[t], pending, decided, holdings, cash, fills, n_fills, costs
            )
            waiting = _any_pending(pending) or _any_pending(closing)
        equity[t] = _mark(t, closes, last_close, holdings, cash)
        for j in range(n_symbols):
            price = closes[t, j]
            if not (math.isfinite(price) and price > 0):
                continue
            weight = weights[t, j]
            held_now = holdings[j]
            if on_change:
                if weight == targets[j]:
                    continue
                closing[j] = -held_now if held_now * weight <= 0.0 else 0.0
                held_now += closing[j]
            if weight == 0.0:
                delta = -held_now
            else:
                gap = weight * equity[t] - held_now * price
                if not on_change and abs(gap) <= band * equity[t]:
                    continue
                grows = gap * weight > 0 if on_change else gap > 0
                unit_cost = price * (1.0 + cost_rate) + per_share if grows else price
                delta = _round_to_lot(gap / unit_cost, lot)
            if on_change:
                targets[j] = weight
            if delta != 0.0 or closing[j] != 0.0:
                pending[j] = delta
                targets[j] = weight
                decided[j] = t
                waiting = True
        if waiting and at_close:
            cash, n_fills = _execute(
                t, closes[t], closing, decided, holdings, cash, fills, n_fills, costs
            )
            cash, n_fills = _execute(
                t, closes[t], pending, decided, holdings, cash, fills, n_fills, costs
            )
            equity[t] = _mark(t, closes, last_close, holdings, cash)
            waiting = _any_pending(pending) or _any_pending(closing)
        for j in range(n_symbols):
            held[t, j] = holdings[j]
    return n_fills
