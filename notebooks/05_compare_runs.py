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
# # Compare runs
#
# Chosen MLflow runs side by side: their headline and out-of-sample metrics, parameters,
# notebook and data hash in one table, and their equity curves (each run's `equity.parquet`)
# overlaid from 1.0. With no `run_ids`, the `newest` finished backtest runs of `experiments`.
#
# `prism research run notebooks/05_compare_runs.ipynb -p run_ids RUN_A,RUN_B`

# %%
from IPython.display import display

from prism.core.settings import load_settings
from prism.research import comparison, plots, tracking

plots.use_notebook_renderer()

# %% tags=["parameters"]
run_ids = []
experiments = ["02_backtest_strategy", "03_parameter_sweep", "04_train_ml_strategy"]
newest = 5
mlflow_run_id = None

# %%
settings = load_settings()
runs = comparison.chosen_runs(settings, run_ids, experiments, newest)
run = tracking.notebook_run(
    settings,
    "05_compare_runs",
    mlflow_run_id,
    {"run_ids": run_ids, "experiments": experiments, "newest": newest},
)
table = comparison.metrics_table(runs)
display(table)

# %%
curves = comparison.equity_curves(runs)
if curves.empty:
    print("no equity curves to compare")
else:
    plots.equity_overlay(curves).show()

# %%
tracking.log_metrics({"n_runs": len(runs)})
tracking.log_params({"compared_runs": ",".join(r.info.run_id for r in runs)})
if not table.empty:
    tracking.log_frame(table, "comparison.parquet")
run.close()
print(f"MLflow run {run.run_id} compared {len(runs)} run(s)")
