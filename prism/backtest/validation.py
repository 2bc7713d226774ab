"""Validation: walk-forward splits, the deflated Sharpe ratio, and a look-ahead check.

- :func:`walk_forward_splits` cuts ``n`` bars into consecutive (train, test) index ranges,
  rolling or expanding.
- :func:`purged_kfold_splits` is k-fold cross-validation for labels that look ``horizon`` bars
  ahead (López de Prado, 2018, ch. 7): training bars whose label window overlaps the test
  fold are purged, and ``embargo`` bars after the fold are dropped too.
- :func:`deflated_sharpe_ratio` (Bailey and López de Prado, 2014) is the probability that a
  Sharpe ratio beats the best one expected from ``n_trials`` unskilled trials, given the
  returns' skewness and kurtosis. Sharpe ratios here are per bar, not annualised.
- :func:`look_ahead_violations` recomputes a strategy on history cut at chosen bars and
  reports every weight that changed: a strategy that peeks at the future cannot pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from prism.strategies import Strategy

EULER_MASCHERONI = 0.5772156649015329


def walk_forward_splits(
    n: int, train: int, test: int, step: int | None = None, expanding: bool = False
) -> list[tuple[range, range]]:
    """Return (train, test) index ranges over ``n`` bars; each test follows its train.

    Rolling windows keep ``train`` bars; expanding ones start at bar 0. Windows advance by
    ``step`` (default ``test``), so with the default the test ranges tile the data.
    """
    if min(train, test) < 1:
        raise ValueError(f"train and test must be at least 1 bar, got {train} and {test}")
    advance = step or test
    splits = []
    start = 0
    while start + train + test <= n:
        first = 0 if expanding else start
        splits.append((range(first, start + train), range(start + train, start + train + test)))
        start += advance
    return splits


def purged_kfold_splits(
    n: int, folds: int, horizon: int = 1, embargo: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (train, test) index arrays for ``folds`` contiguous test folds over ``n`` bars.

    A bar's label uses bars up to ``horizon`` ahead, so a training bar is kept only if its
    label window ends before the test fold starts, or it starts more than ``embargo`` bars
    after the fold ends.
    """
    if folds < 2 or n < folds:
        raise ValueError(f"need 2 <= folds <= n, got folds={folds}, n={n}")
    bars = np.arange(n)
    splits = []
    for test in np.array_split(bars, folds):
        first, last = int(test[0]), int(test[-1])
        keep = (bars + horizon < first) | (bars > last + embargo)
        splits.append((bars[keep], test))
    return splits


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """Return the expected largest of ``n_trials`` Sharpe ratios drawn with zero mean."""
    if n_trials < 2:
        return 0.0
    gamma = EULER_MASCHERONI
    z = (1 - gamma) * norm.ppf(1 - 1 / n_trials) + gamma * norm.ppf(1 - 1 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * z)


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """Return P(true Sharpe > ``benchmark``) given an observed per-bar ``sharpe``.

    ``kurtosis`` is the plain (not excess) kurtosis: 3 for normal returns.
    """
    spread = math.sqrt(1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2)
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / spread))


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    sharpe_variance: float,
    n_trials: int,
) -> float:
    """Return the deflated Sharpe ratio of the best of ``n_trials`` (per-bar Sharpe ratios)."""
    benchmark = expected_max_sharpe(sharpe_variance, n_trials)
    return probabilistic_sharpe_ratio(sharpe, benchmark, n_obs, skew, kurtosis)


@dataclass(frozen=True)
class Violation:
    """A weight that changed when history was cut: the strategy used data from after ``time``."""

    cut: pd.Timestamp
    time: pd.Timestamp
    symbol: str
    full_history: float
    cut_history: float


def look_ahead_violations(
    strategy: Strategy, bars: pd.DataFrame, cuts: list[pd.Timestamp]
) -> list[Violation]:
    """Return every (time, symbol) whose weight on history cut at a cut time differs from its
    weight on the full history; an empty list means no look-ahead was found at those cuts."""
    full = strategy.target_weights(bars).set_index(["time", "symbol"])["weight"]
    found = []
    for cut in cuts:
        partial = strategy.target_weights(bars[bars["time"] <= cut]).set_index(["time", "symbol"])
        theirs = full.reindex(partial.index).to_numpy()
        ours = partial["weight"].to_numpy()
        differs = ~np.isclose(ours, theirs, rtol=0.0, atol=1e-12, equal_nan=True)
        for (time, symbol), a, b in zip(
            partial.index[differs], theirs[differs], ours[differs], strict=True
        ):
            found.append(Violation(cut, time, symbol, float(a), float(b)))
    return found
