"""Judging one backtest the way the promotion gates do: in and out of sample, and honestly.

- :func:`oos_start` picks where the out-of-sample segment begins (a date, or the last fraction
  of the bar times), so a notebook can tune or train on what comes before it only.
- :func:`segment_metrics` reports a backtest over one segment with a prefix (``is_``,
  ``oos_``): Sharpe, drawdown, trades, the returns' skewness and Pearson kurtosis (3 for normal
  returns) and the number of bar returns, which the deflated Sharpe ratio needs.
- :func:`validation_tags` runs the look-ahead check (weights recomputed on history cut at a few
  bars must not change) and the bar-by-bar parity check (calling the strategy bar by bar as the
  live runner does must reproduce the whole-history backtest's trades and equity) and returns
  the run tags ``prism.lookahead_check`` and ``prism.parity_check``: ``passed`` or ``failed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, skew

from prism.backtest.engine import BacktestConfig, BacktestResult, run_backtest, run_bar_by_bar
from prism.backtest.metrics import PERIODS_PER_YEAR, max_drawdown, sharpe
from prism.backtest.validation import look_ahead_violations
from prism.core.errors import ConfigError, DataUnavailable
from prism.strategies import Strategy

LOOKAHEAD_TAG = "prism.lookahead_check"
PARITY_TAG = "prism.parity_check"
PASSED, FAILED = "passed", "failed"
PARITY_TOLERANCE = 1e-7
"""Relative tolerance of the equity comparison (the engines sum in different orders)."""


def oos_start(bars: pd.DataFrame, start: str | None = None, fraction: float = 0.3) -> pd.Timestamp:
    """Return the first bar time (UTC) of the out-of-sample segment of ``bars``.

    ``start`` (a date) wins when given; otherwise the segment is the last ``fraction`` of the
    distinct bar times. Raises :class:`ConfigError` when either segment would be empty.
    """
    times = pd.DatetimeIndex(np.sort(bars["time"].unique()))
    if len(times) < 2:
        raise DataUnavailable("need at least two bar times to split in and out of sample")
    if start:
        stamp = pd.Timestamp(start)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        later = times[times >= stamp]
        if later.empty or later[0] == times[0]:
            raise ConfigError(
                f"oos_start {start} leaves no in-sample or no out-of-sample bars in "
                f"{times[0].date()} .. {times[-1].date()}; pick a date inside that range"
            )
        return pd.Timestamp(later[0])
    if not 0 < fraction < 1:
        raise ConfigError(f"oos_fraction must be between 0 and 1 (exclusive), got {fraction}")
    first = min(len(times) - 1, max(1, round(len(times) * (1 - fraction))))
    return pd.Timestamp(times[first])


def segment_returns(
    equity: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.Series:
    """Return the bar returns of ``equity`` whose bar time lies in ``[start, end)``."""
    r = equity.pct_change().iloc[1:]
    if start is not None:
        r = r[r.index >= start]
    if end is not None:
        r = r[r.index < end]
    return r


def segment_metrics(
    result: BacktestResult,
    timeframe: str,
    prefix: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> dict[str, float]:
    """Return ``{prefix}sharpe``, ``max_drawdown``, ``n_trades``, ``skew``, ``kurtosis``
    (Pearson), ``n_periods`` and ``bar_sharpe`` (not annualised) over the bars in
    ``[start, end)`` of ``result``'s equity curve (positions carried into it included)."""
    return curve_metrics(result.equity, result.trades, timeframe, prefix, start, end)


def curve_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    timeframe: str,
    prefix: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> dict[str, float]:
    """Return :func:`segment_metrics` from an equity curve (float64 Series indexed by bar time,
    UTC) and its trades (a frame with a ``time`` column, UTC), as logged with a run."""
    r = segment_returns(equity, start, end)
    base = equity[equity.index < r.index[0]].iloc[-1:] if len(r) else r
    curve = pd.concat([base, equity.loc[r.index]]) if len(r) else equity.iloc[:0]
    times = trades["time"]
    in_segment = np.ones(len(times), dtype=bool)
    if start is not None:
        in_segment &= (times >= start).to_numpy()
    if end is not None:
        in_segment &= (times < end).to_numpy()
    per_year = PERIODS_PER_YEAR.get(timeframe, 252)
    values = r.to_numpy()
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {
        f"{prefix}sharpe": sharpe(curve, per_year) if len(curve) > 2 else float("nan"),
        f"{prefix}max_drawdown": max_drawdown(curve) if len(curve) else float("nan"),
        f"{prefix}n_trades": float(in_segment.sum()),
        f"{prefix}skew": float(skew(values, bias=True)) if spread > 0 else float("nan"),
        f"{prefix}kurtosis": (
            float(kurtosis(values, fisher=False, bias=True)) if spread > 0 else float("nan")
        ),
        f"{prefix}n_periods": float(len(values)),
        f"{prefix}bar_sharpe": float(values.mean() / spread) if spread > 0 else float("nan"),
    }


def split_metrics(result: BacktestResult, timeframe: str, split: pd.Timestamp) -> dict[str, float]:
    """Return the in-sample (``is_``) and out-of-sample (``oos_``) metrics around ``split``."""
    return {
        **segment_metrics(result, timeframe, "is_", end=split),
        **segment_metrics(result, timeframe, "oos_", start=split),
    }


def look_ahead_cuts(bars: pd.DataFrame, cuts: int = 3) -> list[pd.Timestamp]:
    """Return the ``cuts`` bar times (UTC) spread over the second half of ``bars`` at which the
    look-ahead check cuts history."""
    times = np.sort(bars["time"].unique())
    picks = np.linspace(len(times) // 2, len(times) - 2, num=cuts).astype(int)
    return [pd.Timestamp(times[k]) for k in sorted(set(picks)) if 0 <= k < len(times)]


def look_ahead_passes(strategy: Strategy, bars: pd.DataFrame, cuts: int = 3) -> bool:
    """Return whether the strategy's weights survive history cut at ``cuts`` bars spread over
    the second half of ``bars`` (no weight may change)."""
    return not look_ahead_violations(strategy, bars, look_ahead_cuts(bars, cuts))


def parity_passes(
    strategy: Strategy, bars: pd.DataFrame, config: BacktestConfig, last_bars: int = 20
) -> bool:
    """Return whether calling the strategy bar by bar over the last ``last_bars`` bars (as the
    live runner does) gives the whole-history backtest's trades and equity."""
    times = np.sort(bars["time"].unique())
    if len(times) < 2:
        return False
    start = pd.Timestamp(times[max(1, len(times) - last_bars)])
    whole = run_backtest(bars, strategy, config, start)
    stepped = run_bar_by_bar(bars, strategy, config, start)
    same_trades = len(whole.trades) == len(stepped.trades) and np.allclose(
        whole.trades["quantity"].to_numpy(float), stepped.trades["quantity"].to_numpy(float)
    )
    same_equity = len(whole.equity) == len(stepped.equity) and np.allclose(
        whole.equity.to_numpy(), stepped.equity.to_numpy(), rtol=PARITY_TOLERANCE, atol=0.0
    )
    return bool(same_trades and same_equity)


def validation_tags(
    strategy: Strategy, bars: pd.DataFrame, config: BacktestConfig, parity_bars: int = 20
) -> dict[str, str]:
    """Return the look-ahead and parity tags of ``strategy`` on ``bars``."""
    return {
        LOOKAHEAD_TAG: PASSED if look_ahead_passes(strategy, bars) else FAILED,
        PARITY_TAG: PASSED if parity_passes(strategy, bars, config, parity_bars) else FAILED,
    }


def segment_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Return the headline metrics side by side: rows sharpe, max_drawdown, n_trades (and the
    segments' moments), columns ``whole``, ``in sample`` and ``out of sample``."""
    names = ["sharpe", "max_drawdown", "n_trades", "skew", "kurtosis", "n_periods"]
    columns = {"whole": "", "in sample": "is_", "out of sample": "oos_"}
    return pd.DataFrame(
        {
            title: [metrics.get(f"{prefix}{name}", float("nan")) for name in names]
            for title, prefix in columns.items()
        },
        index=names,
    )
