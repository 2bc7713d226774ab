"""The ML notebook's validation: a labelled data set without look-ahead, purged folds that keep
every symbol of a bar together, walk-forward tests after their training windows, and
permutation importance that finds the one informative feature."""

import numpy as np
import pandas as pd
import pytest

from prism.research.ml_validation import (
    LABEL,
    direction_dataset,
    feature_importance,
    purged_cv,
    walk_forward,
)
from prism.strategies.ml import FEATURES


@pytest.fixture(scope="module")
def recent(bundled_bars):
    return bundled_bars[bundled_bars["time"] >= pd.Timestamp("2015-01-01", tz="UTC")]


def test_the_label_is_whether_the_next_close_is_higher(recent):
    dataset = direction_dataset(recent)

    spx = recent[recent["symbol"] == "SPX"].set_index("time")["close"]
    rows = dataset[dataset["symbol"] == "SPX"].set_index("time")
    following = spx.shift(-1).reindex(rows.index)
    assert (rows[LABEL] == (following > spx.reindex(rows.index)).astype(float)).all()
    assert rows.index.max() < spx.index.max()
    assert not dataset[list(FEATURES)].isna().any().any()


def test_purged_folds_never_train_on_a_bar_next_to_a_test_bar(recent):
    dataset = direction_dataset(recent)

    folds = purged_cv(dataset, "logistic", folds=4, embargo=3)

    assert list(folds["fold"]) == [0, 1, 2, 3]
    assert (folds["train_rows"] + folds["test_rows"] < len(dataset)).all()
    assert folds["test_rows"].sum() == len(dataset)
    assert folds["accuracy"].between(0, 1).all() and folds["roc_auc"].between(0, 1).all()


def test_each_walk_forward_test_starts_after_its_training_window(recent):
    dataset = direction_dataset(recent)

    steps = walk_forward(dataset, "logistic", train_bars=250, test_bars=100)

    assert len(steps) >= 3
    assert (steps["test_start"].diff().dropna() > pd.Timedelta(0)).all()
    assert (steps["train_rows"] == steps["train_rows"].iloc[0]).all()


def test_permutation_importance_ranks_a_leaked_feature_first(recent):
    dataset = direction_dataset(recent)
    dataset["ret_5"] = dataset[LABEL] + np.random.default_rng(1).normal(0, 0.01, len(dataset))
    split = dataset["time"].iloc[len(dataset) * 2 // 3]

    importance = feature_importance(dataset, "logistic", split)

    assert importance.index[0] == "ret_5"
    assert importance.iloc[0] > 0.3
