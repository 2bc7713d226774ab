"""A moving-average crossover sweep with the signal and the accounting fused into one compiled
loop, run in parallel over combinations: what makes a sweep of thousands of combinations on
a million bars cost little more per combination than one pass over the bars.

Each moving average is computed once per window and shared by every combination using it.
The bars are walked in blocks that stay in cache: for each block the averages of every
window are computed (in parallel over windows), then every combination advances through it (in
parallel over combinations), carrying its account from block to block. The account follows
:func:`prism.backtest.simulation.simulate`'s rules operation for operation for one symbol
trading on target changes, sized and filled at the next open (``rebalance="change"``,
``size_at="fill"``, ``fill_at="open"``), so each combination's fills and equity are the
general engine's; the tests hold the two to it. Only the equity curve's moments are gathered
in one pass instead of two, so the sweep's Sharpe ratio, skew and kurtosis agree with the
general engine's to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from prism.backtest.simulation import _round_to_lot

BLOCK = 16_384
"""Bars per block: every window's averages for a block (about 100 windows) stay in cache."""

_CASH, _HELD, _TARGET, _PENDING, _CLOSING, _PREV, _PEAK, _DRAWDOWN = range(8)
_FILLS, _S1, _S2, _S3, _S4, _FIRST = range(8, 14)
STATE = 14


def sma_crossover_sweep(
    opens: np.ndarray,
    closes: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    capital: float,
    costs: np.ndarray,
    weight: float,
    allow_short: bool,
    block: int = BLOCK,
) -> np.ndarray:
    """Return, per combination (``fast[k]``, ``slow[k]`` windows), a row of (final equity,
    first equity, fills, the sum of the equity curve's simple returns and of their squares,
    cubes and fourth powers, maximum drawdown).

    ``opens`` and ``closes`` are one symbol's finite, positive prices; ``costs`` is (commission
    in bps, commission per share, slippage in bps, lot); ``weight`` the target while long
    (after the leverage cap); shorts take ``-weight`` when ``allow_short``; ``block`` the bars
    walked at a time.
    """
    windows = np.unique(np.concatenate((fast, slow))).astype(np.int64)
    slot = np.full(int(windows.max()) + 1, -1, dtype=np.int64)
    slot[windows] = np.arange(windows.size)
    state = np.zeros((fast.size, STATE))
    state[:, [_CASH, _PREV, _PEAK, _FIRST]] = capital
    _sweep(
        np.ascontiguousarray(opens, dtype=np.float64),
        np.ascontiguousarray(closes, dtype=np.float64),
        windows,
        slot[fast.astype(np.int64)],
        slot[slow.astype(np.int64)],
        costs,
        weight,
        allow_short,
        block,
        state,
    )
    return state[:, [_PREV, _FIRST, _FILLS, _S1, _S2, _S3, _S4, _DRAWDOWN]]


@njit(cache=True, parallel=True)
def _sweep(
    opens: np.ndarray,
    closes: np.ndarray,
    windows: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    costs: np.ndarray,
    weight: float,
    allow_short: bool,
    block: int,
    state: np.ndarray,
) -> None:
    n = closes.size
    sums = np.zeros(windows.size)
    averages = np.empty((windows.size, block))
    for start in range(0, n, block):
        stop = min(n, start + block)
        for k in prange(windows.size):
            sums[k] = _averages(closes, windows[k], start, stop, sums[k], averages[k])
        for c in prange(fast.size):
            _advance(
                opens,
                closes,
                averages[fast[c]],
                averages[slow[c]],
                start,
                stop,
                costs,
                weight,
                allow_short,
                state[c],
            )


@njit(cache=True, inline="always")
def _averages(
    closes: np.ndarray, window: int, start: int, stop: int, total: float, out: np.ndarray
) -> float:
    """Write the ``window``-bar simple moving averages of bars ``start:stop`` into ``out``
    with :func:`prism.features.indicators.sma`'s running sum (the same additions in the same
    order); return the running sum carried to the next block."""
    for i in range(start, stop):
        total += closes[i]
        if i < window - 1:
            out[i - start] = np.nan
            continue
        out[i - start] = total / window
        total -= closes[i - window + 1]
    return total


@njit(cache=True, inline="always")
def _advance(
    opens: np.ndarray,
    closes: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    start: int,
    stop: int,
    costs: np.ndarray,
    weight: float,
    allow_short: bool,
    state: np.ndarray,
) -> None:
    """Advance one combination's account through bars ``start:stop``. The first bar's equity
    is the capital (nothing fills before a decision). A drawdown is worked out only where it
    may be a new maximum: below ``floor``, a hair above the level that would make it one."""
    commission_bps, per_share, slippage_bps, lot = costs[0], costs[1], costs[2], costs[3]
    cost_rate = (commission_bps + slippage_bps) / 10_000.0
    cash, held, target = state[_CASH], state[_HELD], state[_TARGET]
    pending, closing, prev = state[_PENDING], state[_CLOSING], state[_PREV]
    peak, drawdown, fills = state[_PEAK], state[_DRAWDOWN], state[_FILLS]
    s1, s2, s3, s4 = state[_S1], state[_S2], state[_S3], state[_S4]
    floor = peak * (1.0 - drawdown) * (1.0 + 1e-12)
    for t in range(start, stop):
        if pending != 0.0 or closing != 0.0:
            price = opens[t]
            if closing != 0.0:
                cash, held = _fill(closing, price, cash, held, costs)
                fills += 1.0
                closing = 0.0
            if pending != 0.0:
                equity = cash + held * price if held != 0.0 else cash
                gap = target * equity - held * price
                slipped = price * (1.0 + math.copysign(slippage_bps, gap) / 10_000.0)
                if gap * target > 0:
                    unit = slipped * (1.0 + commission_bps / 10_000.0) + per_share
                else:
                    unit = slipped
                wanted = _round_to_lot(gap / unit, lot)
                if wanted > 0:
                    unit = slipped * (1.0 + commission_bps / 10_000.0) + per_share
                    if wanted * unit > cash:
                        wanted = _round_to_lot(max(cash, 0.0) / unit, lot)
                if wanted != 0.0:
                    cash, held = _fill(wanted, price, cash, held, costs)
                    fills += 1.0
                pending = 0.0
        equity = cash + held * closes[t] if held != 0.0 else cash
        if equity != prev:
            r = equity / prev - 1.0
            r2 = r * r
            s1 += r
            s2 += r2
            s3 += r2 * r
            s4 += r2 * r2
            if equity > peak:
                peak = equity
                floor = peak * (1.0 - drawdown) * (1.0 + 1e-12)
            elif equity < floor:
                drawdown = max(drawdown, 1.0 - equity / peak)
                floor = peak * (1.0 - drawdown) * (1.0 + 1e-12)
        prev = equity
        gap_now = fast[t - start] - slow[t - start]
        wanted_weight = weight if gap_now > 0 else (-weight if gap_now < 0 and allow_short else 0.0)
        if wanted_weight == target:
            continue
        price = closes[t]
        closing = -held if held * wanted_weight <= 0.0 else 0.0
        held_now = held + closing
        if wanted_weight == 0.0:
            delta = -held_now
        else:
            gap = wanted_weight * equity - held_now * price
            unit = price * (1.0 + cost_rate) + per_share if gap * wanted_weight > 0 else price
            delta = _round_to_lot(gap / unit, lot)
        target = wanted_weight
        pending = delta
    state[_CASH], state[_HELD], state[_TARGET] = cash, held, target
    state[_PENDING], state[_CLOSING], state[_PREV] = pending, closing, prev
    state[_PEAK], state[_DRAWDOWN], state[_FILLS] = peak, drawdown, fills
    state[_S1], state[_S2], state[_S3], state[_S4] = s1, s2, s3, s4


@njit(cache=True, inline="always")
def _fill(
    quantity: float, price: float, cash: float, held: float, costs: np.ndarray
) -> tuple[float, float]:
    """Fill ``quantity`` at ``price`` worsened by slippage; return the new cash and holding."""
    filled = price * (1.0 + math.copysign(costs[2], quantity) / 10_000.0)
    fee = abs(quantity) * filled * costs[0] / 10_000.0 + abs(quantity) * costs[1]
    return cash - (quantity * filled + fee), held + quantity
