# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train an ML strategy
#
# Point-in-time features (`prism.features.point_in_time`) and the label "the next bar closes
# higher"; a scikit-learn logistic regression or XGBoost classifier (`model`) scored by purged,
# embargoed k-fold cross-validation on the in-sample bars and by a walk-forward test over all of
# them; permutation feature importance on the out-of-sample bars. Then the `direction_classifier`
# strategy (refitted every quarter on the `train_bars` before it) is backtested, checked and
# logged with its out-of-sample metrics, like `02_backtest_strategy`.
#
# `prism research run notebooks/04_train_ml_strategy.ipynb -p model xgboost -p start 2005-01-01`

# %%
from IPython.display import display

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.settings import load_settings
from prism.data.store import read_bars
from prism.db.engine import open_database
from prism.research import plots, tracking
from prism.research.data_gate import research_gate
from prism.research.evaluation import oos_start as out_of_sample_start
from prism.research.evaluation import segment_table, validation_tags
from prism.research.ml_validation import (
    direction_dataset,
    feature_importance,
    purged_cv,
    walk_forward,
)
from prism.strategies import make_strategy

plots.use_notebook_renderer()

# %% tags=["parameters"]
model = "logistic"
symbols = ["SPX", "NDX"]
timeframe = "1d"
start = "2012-01-01"
end = "2018-12-31"
train_bars = 250
threshold = 0.52
folds = 5
embargo = 5
walk_train = 500
walk_test = 250
oos_start = None
oos_fraction = 0.3
commission_bps = 1.0
slippage_bps = 2.0
capital = 1_000_000.0
allow_gaps = False
parity_bars = 5
mlflow_run_id = None

# %%
settings = load_settings()
engine = open_database(settings)
run = tracking.notebook_run(
    settings,
    "04_train_ml_strategy",
    mlflow_run_id,
    {
        "model": model,
        "symbols": symbols,
        "timeframe": timeframe,
        "start": start,
        "end": end,
        "train_bars": train_bars,
        "threshold": threshold,
        "folds": folds,
        "embargo": embargo,
        "walk_train": walk_train,
        "walk_test": walk_test,
        "oos_start": oos_start,
        "oos_fraction": oos_fraction,
        "commission_bps": commission_bps,
        "slippage_bps": slippage_bps,
        "capital": capital,
        "allow_gaps": allow_gaps,
        "parity_bars": parity_bars,
    },
)

# %%
bars = read_bars(engine, symbols, start, end, timeframe)
gate = research_gate(engine, symbols, timeframe, start, end, allow_gaps)
split = out_of_sample_start(bars, oos_start, oos_fraction)
dataset = direction_dataset(bars)
print(f"{len(dataset):,} labelled rows; out of sample from {split.date()}")
display(dataset.describe().T)

# %%
cv = purged_cv(dataset[dataset["time"] < split], model, folds, embargo)
display(cv)

# %%
walk = walk_forward(dataset, model, walk_train, walk_test)
display(walk)

# %%
importance = feature_importance(dataset, model, split)
plots.importance_figure(
    importance, f"{model}: permutation importance (ROC AUC drop) out of sample"
)

# %%
chosen = make_strategy(
    "direction_classifier", {"model": model, "train_bars": train_bars, "threshold": threshold}
)
config = BacktestConfig(capital=capital, commission_bps=commission_bps, slippage_bps=slippage_bps)
result = run_backtest(bars, chosen, config)
checks = validation_tags(chosen, bars, config, parity_bars)
sheet = tracking.backtest_tear_sheet(chosen, bars, result, symbols)
sheet.show()

# %%
metrics = tracking.log_backtest(
    chosen, bars, result, symbols, split, {**gate, **checks}, 1, sheet, parity_bars
)
tracking.log_metrics(
    {
        "cv_accuracy": cv["accuracy"].mean(),
        "cv_roc_auc": cv["roc_auc"].mean(),
        "walk_forward_accuracy": walk["accuracy"].mean(),
        "walk_forward_roc_auc": walk["roc_auc"].mean(),
    }
)
tracking.log_frame(cv, "purged_cv.parquet")
tracking.log_frame(walk, "walk_forward.parquet")
tracking.log_frame(importance.to_frame(), "feature_importance.parquet")
segment_table(metrics)

# %%
run.close()
print(f"MLflow run {run.run_id}: {checks}")
