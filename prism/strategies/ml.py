"""Machine-learning strategies: a classifier predicts the next bar's direction from
point-in-time features, and its probability becomes a weight.

No look-ahead by construction: the model is refitted at the first bar of every calendar
quarter on the ``train_bars`` bars before it (labels are next-bar directions, so the newest
label used is the refit bar's own close), and each bar is predicted by the model of the last
refit at or before it. Refit dates come from the calendar, not from a bar count, so a window
of ``warmup + 1`` bars (as the live runner reads) reproduces the whole history's decisions;
the bar-by-bar test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies.base import equal_split

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

FEATURES = ("ret_1", "ret_5", "ret_20", "vol_20", "volume_ratio_20", "close_sma_50", "bb_position")
FEATURE_LOOKBACK = 51
QUARTER_BARS = 66


def make_classifier(kind: str) -> Any:
    """Return an unfitted classifier of ``kind`` (``logistic`` or ``xgboost``), configured
    the same everywhere it is fitted (the strategy and its purged cross-validation)."""
    if kind == "logistic":
        # Imported here: scikit-learn takes ~4 s to import; only fitting needs it.
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    if kind == "xgboost":
        # Imported here: XGBoost takes ~5 s to import; only its model needs it.
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=50, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=7, verbosity=0
        )
    raise ConfigError(f"unknown classifier {kind!r}; use 'logistic' or 'xgboost'")


@dataclass(frozen=True)
class DirectionClassifier:
    """Long a symbol while a classifier gives the next bar a rise probability above
    ``threshold`` (short below ``1 - threshold``, if allowed)."""

    name: ClassVar[str] = "direction_classifier"
    model: str = "logistic"
    train_bars: int = 500
    threshold: float = 0.52
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.train_bars < 50 or not 0.5 <= self.threshold < 1:
            raise ConfigError(
                f"direction_classifier needs train_bars >= 50 and 0.5 <= threshold < 1, got "
                f"train_bars={self.train_bars}, threshold={self.threshold}"
            )
        make_classifier(self.model)

    @property
    def warmup(self) -> int:
        """Return the bars one decision needs: a quarter, the training set and its features."""
        return QUARTER_BARS + self.train_bars + FEATURE_LOOKBACK

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight) from per-symbol classifiers refitted each quarter."""
        # Imported here: compiles numba kernels on import (~3 s); only fitting needs them.
        from prism.features.point_in_time import compute

        ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
        benchmark = str(ordered["symbol"].iloc[0]) if len(ordered) else ""
        table = compute(ordered, benchmark).reset_index(drop=True)
        probability = np.full(len(ordered), np.nan)
        for _, rows in ordered.groupby("symbol", sort=False):
            probability[rows.index] = self._probabilities(rows, table.loc[rows.index])
        signal = np.where(
            probability > self.threshold, 1.0, np.where(probability < 1 - self.threshold, -1.0, 0.0)
        )
        return equal_split(ordered, signal, self.allow_short)

    def _probabilities(self, rows: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
        close = rows["close"].to_numpy()
        label = np.r_[(close[1:] > close[:-1]).astype(float), np.nan]
        x = table[list(FEATURES)].to_numpy()
        times = pd.DatetimeIndex(rows["time"])
        quarter = times.year * 4 + (times.month - 1) // 3
        refits = np.flatnonzero(np.r_[False, quarter[1:] != quarter[:-1]])
        out = np.full(len(rows), np.nan)
        for k, start in enumerate(refits):
            stop = refits[k + 1] if k + 1 < len(refits) else len(rows)
            first = start - self.train_bars
            if first < FEATURE_LOOKBACK:
                continue
            train_x, train_y = x[first:start], label[first:start]
            usable = ~np.isnan(train_x).any(axis=1) & ~np.isnan(train_y)
            if len(np.unique(train_y[usable])) < 2:
                continue
            model = make_classifier(self.model).fit(train_x[usable], train_y[usable])
            block = x[start:stop]
            ready = ~np.isnan(block).any(axis=1)
            if ready.any():
                out[start:stop][ready] = model.predict_proba(block[ready])[:, 1]
        return out
