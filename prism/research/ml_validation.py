"""Validating a next-bar direction classifier before it is a strategy (``04_train_ml_strategy``).

The data set is :mod:`prism.features.point_in_time`' point-in-time features with the label "the next
bar's close is higher". Rows are grouped by bar time (every symbol of a bar falls in the same fold),
so :func:`purged_cv` (purged, embargoed k-fold) and :func:`walk_forward` (train on a window,
test on the bars after it) never train on a bar whose label overlaps a test bar.
:func:`feature_importance` is the permutation importance on held-out rows: how much the
held-out ROC AUC drops when one feature is shuffled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from prism.backtest.validation import purged_kfold_splits, walk_forward_splits
from prism.core.errors import DataUnavailable
from prism.features.point_in_time import compute
from prism.strategies.ml import FEATURES, make_classifier

LABEL = "label"


def direction_dataset(bars: pd.DataFrame, benchmark: str | None = None) -> pd.DataFrame:
    """Return time, symbol, one float64 column per feature of the direction classifier and
    ``label`` (1.0 when the next bar closes higher), rows with any NaN dropped, time-sorted."""
    ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
    table = compute(ordered, benchmark or str(ordered["symbol"].iloc[0]))
    close = ordered["close"]
    following = close.groupby(ordered["symbol"]).shift(-1)
    table[LABEL] = np.where(following.isna(), np.nan, (following > close).astype(float))
    kept = table[["time", "symbol", *FEATURES, LABEL]].dropna()
    if kept.empty:
        raise DataUnavailable("no bar has every feature and a label; read more bars")
    return kept.sort_values(["time", "symbol"], kind="stable").reset_index(drop=True)


def _time_codes(dataset: pd.DataFrame) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(dataset["time"], sort=True)
    return codes, len(uniques)


def _scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    probability = model.predict_proba(x)[:, 1]
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, probability > 0.5)),
        "roc_auc": float(roc_auc_score(y, probability)) if both else float("nan"),
        "log_loss": float(log_loss(y, probability, labels=[0.0, 1.0])),
    }


def _fold_row(
    kind: str, dataset: pd.DataFrame, train: np.ndarray, test: np.ndarray
) -> dict[str, Any]:
    x = dataset[list(FEATURES)].to_numpy()
    y = dataset[LABEL].to_numpy()
    model = make_classifier(kind).fit(x[train], y[train])
    return {
        "train_rows": int(train.sum()),
        "test_rows": int(test.sum()),
        "test_start": dataset["time"][test].min(),
        "test_end": dataset["time"][test].max(),
        **_scores(model, x[test], y[test]),
    }


def purged_cv(
    dataset: pd.DataFrame, kind: str, folds: int = 5, embargo: int = 5, horizon: int = 1
) -> pd.DataFrame:
    """Return one row per purged k-fold split: train and test rows, the test span (UTC), and
    the test accuracy, ROC AUC and log loss of a ``kind`` classifier fitted on the rest."""
    codes, n_times = _time_codes(dataset)
    rows = []
    for fold, (train, test) in enumerate(purged_kfold_splits(n_times, folds, horizon, embargo)):
        row = _fold_row(kind, dataset, np.isin(codes, train), np.isin(codes, test))
        rows.append({"fold": fold, **row})
    return pd.DataFrame(rows)


def walk_forward(dataset: pd.DataFrame, kind: str, train_bars: int, test_bars: int) -> pd.DataFrame:
    """Return one row per walk-forward split (rolling ``train_bars`` bar times, then the next
    ``test_bars``): rows, test span and the test scores of a classifier fitted on the window."""
    codes, n_times = _time_codes(dataset)
    splits = walk_forward_splits(n_times, train_bars, test_bars)
    if not splits:
        raise DataUnavailable(
            f"{n_times} bar times cannot hold one walk-forward split of {train_bars} training "
            f"and {test_bars} test bars; read more bars or shorten the windows"
        )
    rows = []
    for step, (train, test) in enumerate(splits):
        row = _fold_row(
            kind, dataset, np.isin(codes, np.asarray(train)), np.isin(codes, np.asarray(test))
        )
        rows.append({"split": step, **row})
    return pd.DataFrame(rows)


def feature_importance(
    dataset: pd.DataFrame, kind: str, split: pd.Timestamp, repeats: int = 5, seed: int = 7
) -> pd.Series:
    """Return each feature's permutation importance (drop in ROC AUC on the rows at or after
    ``split`` when the feature is shuffled) for a classifier fitted on the rows before it,
    sorted largest first."""
    before = (dataset["time"] < split).to_numpy()
    if before.all() or not before.any():
        raise DataUnavailable(f"the split {split} leaves no rows on one side of the data set")
    x = dataset[list(FEATURES)].to_numpy()
    y = dataset[LABEL].to_numpy()
    model = make_classifier(kind).fit(x[before], y[before])
    found = permutation_importance(
        model, x[~before], y[~before], scoring="roc_auc", n_repeats=repeats, random_state=seed
    )
    return pd.Series(found.importances_mean, index=list(FEATURES), name="importance").sort_values(
        ascending=False
    )
