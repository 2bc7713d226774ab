"""Technical indicators with TA-Lib's exact conventions, compiled with numba, over many symbols.

Each kernel takes float64 arrays of one symbol, oldest first, and returns arrays of the same
length with NaN for the warm-up bars, like TA-Lib: SMA; EMA seeded by the SMA of its first
``n`` values; RSI, ATR and ADX with Wilder's smoothing seeded by the mean (ATR, RSI) or the sum
(ADX's directional movement) of the first ``n`` values; MACD whose fast EMA starts where the slow
one does; Bollinger bands with the population standard deviation. :func:`compute` runs them per
symbol over a bar frame. Tests hold every output to TA-Lib's within 1e-9 after the warm-up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prism.core.jit import lazy_njit

NAN = np.nan


def _nans(size: int) -> np.ndarray:
    """Return an output array of NaN, allocated by numpy: its large blocks sit on huge pages,
    so filling them costs a third of what an array allocated inside a numba kernel does."""
    return np.full(size, NAN)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Return the simple moving average of ``n`` values."""
    out = _nans(x.size)
    _sma(x, n, out)
    return out


@lazy_njit(cache=True, nogil=True)
def _sma(x: np.ndarray, n: int, out: np.ndarray) -> None:
    if x.size < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, x.size):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]
    return


@lazy_njit(cache=True, nogil=True)
def _ema_from(x: np.ndarray, n: int, first: int, out: np.ndarray) -> None:
    """EMA whose seed is the SMA of the ``n`` values ending at index ``first``."""
    if first >= x.size or first < n - 1:
        return
    k = 2.0 / (n + 1)
    value = 0.0
    for i in range(first - n + 1, first + 1):
        value += x[i]
    value /= n
    out[first] = value
    for i in range(first + 1, x.size):
        value = (x[i] - value) * k + value
        out[i] = value
    return


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Return the exponential moving average (alpha 2/(n+1)), seeded by the first SMA."""
    out = _nans(x.size)
    _ema_from(x, n, n - 1, out)
    return out


def rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's relative strength index."""
    out = _nans(close.size)
    _rsi(close, n, out)
    return out


@lazy_njit(cache=True, nogil=True)
def _rsi(close: np.ndarray, n: int, out: np.ndarray) -> None:
    if close.size <= n:
        return
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        change = close[i] - close[i - 1]
        if change > 0:
            gain += change
        else:
            loss -= change
    gain /= n
    loss /= n
    out[n] = 100.0 * gain / (gain + loss) if gain + loss != 0 else 0.0
    for i in range(n + 1, close.size):
        change = close[i] - close[i - 1]
        gain = (gain * (n - 1) + (change if change > 0 else 0.0)) / n
        loss = (loss * (n - 1) + (-change if change < 0 else 0.0)) / n
        out[i] = 100.0 * gain / (gain + loss) if gain + loss != 0 else 0.0
    return


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, ...]:
    """Return MACD line, signal line and histogram (TA-Lib alignment).

    Both EMAs start at bar ``slow - 1`` (the fast one seeded by the SMA of the ``fast`` closes
    ending there); the signal EMA is seeded by the SMA of the first ``signal`` MACD values.
    """
    outs = (_nans(close.size), _nans(close.size), _nans(close.size))
    _macd(close, fast, slow, signal, *outs)
    return outs


@lazy_njit(cache=True, nogil=True)
def _macd(
    close: np.ndarray,
    fast: int,
    slow: int,
    signal: int,
    line_out: np.ndarray,
    signal_out: np.ndarray,
    hist_out: np.ndarray,
) -> None:
    size = close.size
    start = slow - 1
    first = start + signal - 1
    if size <= first:
        return
    k_fast, k_slow, k_signal = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
    fast_value = 0.0
    for i in range(start - fast + 1, start + 1):
        fast_value += close[i]
    fast_value /= fast
    slow_value = 0.0
    for i in range(slow):
        slow_value += close[i]
    slow_value /= slow
    seed = 0.0
    signal_value = 0.0
    for i in range(start, size):
        if i > start:
            fast_value = (close[i] - fast_value) * k_fast + fast_value
            slow_value = (close[i] - slow_value) * k_slow + slow_value
        line = fast_value - slow_value
        if i < first:
            seed += line
            continue
        if i == first:
            signal_value = (seed + line) / signal
        else:
            signal_value = (line - signal_value) * k_signal + signal_value
        line_out[i] = line
        signal_out[i] = signal_value
        hist_out[i] = line - signal_value


@lazy_njit(cache=True, nogil=True)
def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, i: int) -> float:
    return max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's average true range."""
    out = _nans(close.size)
    _atr(high, low, close, n, out)
    return out


@lazy_njit(cache=True, nogil=True)
def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> None:
    if close.size <= n:
        return
    value = 0.0
    for i in range(1, n + 1):
        value += _true_range(high, low, close, i)
    value /= n
    out[n] = value
    for i in range(n + 1, close.size):
        value = (value * (n - 1) + _true_range(high, low, close, i)) / n
        out[i] = value
    return


@lazy_njit(cache=True, nogil=True)
def _window_moments(x: np.ndarray, start: int, stop: int) -> tuple[float, float]:
    """Return the mean and the sum of squared deviations of ``x[start:stop]``, two-pass."""
    mean = 0.0
    for j in range(start, stop):
        mean += x[j]
    mean /= stop - start
    spread = 0.0
    for j in range(start, stop):
        spread += (x[j] - mean) ** 2
    return mean, spread


def bollinger(close: np.ndarray, n: int, k: float) -> tuple[np.ndarray, ...]:
    """Return upper, middle and lower bands: SMA ± k population standard deviations.

    The middle band is TA-Lib's SMA. The variance is kept by a rolling Welford update,
    recomputed exactly from the window every ``n`` bars so rounding cannot accumulate (a running
    sum of squares drifts from TA-Lib by several 1e-9 on index levels).
    """
    outs = (_nans(close.size), _nans(close.size), _nans(close.size))
    _bollinger(close, n, k, *outs)
    return outs


@lazy_njit(cache=True, nogil=True)
def _bollinger(
    close: np.ndarray,
    n: int,
    k: float,
    upper: np.ndarray,
    middle: np.ndarray,
    lower: np.ndarray,
) -> None:
    if close.size < n:
        return
    mean = 0.0
    spread = 0.0
    _sma(close, n, middle)
    for i in range(n - 1, close.size):
        if (i - n + 1) % n == 0:
            mean, spread = _window_moments(close, i - n + 1, i + 1)
        else:
            leaving, entering = close[i - n], close[i]
            new_mean = mean + (entering - leaving) / n
            spread += (entering - leaving) * (entering - new_mean + leaving - mean)
            mean = new_mean
        variance = spread / n
        deviation = np.sqrt(variance) if variance > 0 else 0.0
        upper[i] = middle[i] + k * deviation
        lower[i] = middle[i] - k * deviation


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's average directional index."""
    out = _nans(close.size)
    _adx(high, low, close, n, out)
    return out


@lazy_njit(cache=True, nogil=True)
def _adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> None:
    if close.size < 2 * n:
        return
    plus = 0.0
    minus = 0.0
    tr = 0.0
    for i in range(1, n):
        up = high[i] - high[i - 1]
        down = low[i - 1] - low[i]
        plus += up if up > down and up > 0 else 0.0
        minus += down if down > up and down > 0 else 0.0
        tr += _true_range(high, low, close, i)
    dx_sum = 0.0
    value = 0.0
    for i in range(n, close.size):
        up = high[i] - high[i - 1]
        down = low[i - 1] - low[i]
        plus = plus - plus / n + (up if up > down and up > 0 else 0.0)
        minus = minus - minus / n + (down if down > up and down > 0 else 0.0)
        tr = tr - tr / n + _true_range(high, low, close, i)
        plus_di = 100.0 * plus / tr if tr != 0 else 0.0
        minus_di = 100.0 * minus / tr if tr != 0 else 0.0
        total = plus_di + minus_di
        dx = 100.0 * abs(plus_di - minus_di) / total if total != 0 else 0.0
        if i < 2 * n - 1:
            dx_sum += dx
        elif i == 2 * n - 1:
            value = (dx_sum + dx) / n
            out[i] = value
        else:
            value = (value * (n - 1) + dx) / n
            out[i] = value
    return


INDICATORS = (
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "atr_14",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "adx_14",
)


def _one_symbol(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    line, signal_line, hist = macd(close, 12, 26, 9)
    upper, middle, lower = bollinger(close, 20, 2.0)
    return {
        "sma_20": sma(close, 20),
        "sma_50": sma(close, 50),
        "sma_200": sma(close, 200),
        "ema_12": ema(close, 12),
        "ema_26": ema(close, 26),
        "rsi_14": rsi(close, 14),
        "macd": line,
        "macd_signal": signal_line,
        "macd_hist": hist,
        "atr_14": atr(high, low, close, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "adx_14": adx(high, low, close, 14),
    }


def compute(bars: pd.DataFrame) -> pd.DataFrame:
    """Return time, symbol and one float64 column per name in :data:`INDICATORS`.

    ``bars`` is a bar frame of one timeframe; each symbol is computed on its own history,
    oldest first. Warm-up bars are NaN.
    """
    ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in INDICATORS}
    for _, group in ordered.groupby("symbol", sort=False):
        values = _one_symbol(*(group[c].to_numpy(np.float64) for c in ("high", "low", "close")))
        for name in INDICATORS:
            columns[name].append(values[name])
    out = ordered[["time", "symbol"]].copy()
    for name in INDICATORS:
        out[name] = np.concatenate(columns[name]) if columns[name] else np.array([])
    return out
