"""The backtester's inner loop, compiled with numba.

It is :mod:`prism.portfolio`'s rules (``order_quantities``, ``affordable``, ``fill_price``,
``commission``) written once more as array code, operation for operation, so that the compiled
backtest and the live runner (which calls the Python rules) produce the same orders; the
integration test that replays the runner against a backtest holds them to it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _round_to_lot(quantity: float, lot: float) -> float:
    lots = math.floor(abs(quantity) / lot + 1e-9)
    if lots == 0:
        return 0.0
    return math.copysign(np.rint(lots * lot * 1e10) / 1e10, quantity)


@njit(cache=True)
def simulate(
    opens: np.ndarray,
    closes: np.ndarray,
    weights: np.ndarray,
    capital: float,
    commission_bps: float,
    slippage_bps: float,
    band: float,
    lot: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step through (time × symbol) panels; return equity, holdings and fills.

    Fills are rows of (bar index filled, symbol index, quantity, price, commission, bar index
    decided). NaN opens or closes mean the symbol has no bar then.
    """
    n_bars, n_symbols = opens.shape
    cost_rate = (commission_bps + slippage_bps) / 10_000.0
    fee_rate = commission_bps / 10_000.0
    cash = capital
    holdings = np.zeros(n_symbols)
    last_close = np.full(n_symbols, np.nan)
    pending = np.zeros(n_symbols)
    decided = np.full(n_symbols, -1)
    equity = np.empty(n_bars)
    held = np.empty((n_bars, n_symbols))
    fills = np.empty((n_bars * n_symbols, 6))
    n_fills = 0
    for t in range(n_bars):
        for pass_ in range(2):
            sells = pass_ == 0
            for j in range(n_symbols):
                wanted = pending[j]
                if wanted == 0.0 or (wanted < 0) != sells or not math.isfinite(opens[t, j]):
                    continue
                pending[j] = 0.0
                price = opens[t, j] * (1.0 + math.copysign(slippage_bps, wanted) / 10_000.0)
                quantity = wanted
                if wanted > 0:
                    unit = price * (1.0 + fee_rate)
                    if wanted * unit > cash:
                        quantity = _round_to_lot(max(cash, 0.0) / unit, lot)
                if quantity == 0.0:
                    continue
                fee = abs(quantity) * price * commission_bps / 10_000.0
                cash -= quantity * price + fee
                holdings[j] += quantity
                fills[n_fills, 0] = t
                fills[n_fills, 1] = j
                fills[n_fills, 2] = quantity
                fills[n_fills, 3] = price
                fills[n_fills, 4] = fee
                fills[n_fills, 5] = decided[j]
                n_fills += 1
        value = 0.0
        for j in range(n_symbols):
            if math.isfinite(closes[t, j]):
                last_close[j] = closes[t, j]
            if holdings[j] != 0.0:
                value += holdings[j] * last_close[j]
        equity[t] = cash + value
        held[t] = holdings
        for j in range(n_symbols):
            price = closes[t, j]
            if not (math.isfinite(price) and price > 0):
                continue
            weight = weights[t, j]
            if weight == 0.0:
                delta = -holdings[j]
            else:
                gap = weight * equity[t] - holdings[j] * price
                if abs(gap) <= band * equity[t]:
                    continue
                unit_cost = price * (1.0 + cost_rate) if gap > 0 else price
                delta = _round_to_lot(gap / unit_cost, lot)
            if delta != 0.0:
                pending[j] = delta
                decided[j] = t
    return equity, held, fills[:n_fills]
