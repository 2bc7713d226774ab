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
# # Train a deep strategy
#
# A sequence model (`lstm_direction` or `transformer_direction`, PyTorch) and a reinforcement-
# learning agent (`ppo_agent` or `dqn_agent`, stable-baselines3, trained on Prism's own
# simulation of fills and costs), both refitted walk-forward at each `period` on the
# `train_bars` before it, seeded and deterministic. Their learning curves, then out-of-sample
# equity against buy and hold and the logistic `direction_classifier`. The sequence model is the
# run's strategy: backtested, checked (look-ahead, bar-by-bar parity) and logged with its fitted
# networks, so the registry and the live runner load it without retraining; the agent's metrics
# and learning curves are logged beside it. Needs the deep extra (`make install-deep`).
#
# `prism research run notebooks/06_train_deep_strategy.ipynb -p agent dqn_agent`

# %%
from IPython.display import display

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.settings import load_settings
from prism.data.store import read_bars
from prism.db.engine import open_database
from prism.research import plots, tracking
from prism.research.data_gate import research_gate
from prism.research.deep import (
    equity_comparison_figure,
    learning_curve_figure,
    out_of_sample_equity,
)
from prism.research.evaluation import oos_start as out_of_sample_start
from prism.research.evaluation import segment_table, split_metrics, validation_tags
from prism.strategies import make_strategy

plots.use_notebook_renderer()

# %% tags=["parameters"]
sequence_model = "lstm_direction"
agent = "ppo_agent"
symbols = ["SPX", "NDX"]
timeframe = "1d"
start = "2013-01-01"
end = "2018-12-31"
window = 10
train_bars = 250
period = "year"
hidden = 16
epochs = 20
steps = 1024
seed = 7
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
    "06_train_deep_strategy",
    mlflow_run_id,
    {
        "sequence_model": sequence_model,
        "agent": agent,
        "symbols": symbols,
        "timeframe": timeframe,
        "start": start,
        "end": end,
        "window": window,
        "train_bars": train_bars,
        "period": period,
        "hidden": hidden,
        "epochs": epochs,
        "steps": steps,
        "seed": seed,
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
shared = {"window": window, "train_bars": train_bars, "period": period, "hidden": hidden}
sequence = make_strategy(sequence_model, {**shared, "epochs": epochs, "seed": seed})
policy = make_strategy(agent, {**shared, "steps": steps, "seed": seed})
config = BacktestConfig(capital=capital, commission_bps=commission_bps, slippage_bps=slippage_bps)
result = run_backtest(bars, sequence, config)
agent_result = run_backtest(bars, policy, config)
print(
    f"out of sample from {split.date()}; {sequence.store.trained} networks and "
    f"{policy.store.trained} agents trained"
)

# %%
sequence_curves = sequence.learning_curves()
learning_curve_figure(sequence_curves, f"{sequence_model}: training loss per epoch", "loss")

# %%
agent_curves = policy.learning_curves()
learning_curve_figure(agent_curves, f"{agent}: reward per training episode", "log return")

# %%
classifier = make_strategy("direction_classifier", {"train_bars": train_bars})
equity = out_of_sample_equity(
    bars,
    {sequence_model: sequence, agent: policy, "direction_classifier (logistic)": classifier},
    config,
    split,
)
equity_comparison_figure(equity, f"out of sample from {split.date()}")

# %%
checks = validation_tags(sequence, bars, config, parity_bars)
sheet = tracking.backtest_tear_sheet(sequence, bars, result, symbols)
metrics = tracking.log_backtest(
    sequence, bars, result, symbols, split, {**gate, **checks}, 1, sheet, parity_bars
)
agent_metrics = split_metrics(agent_result, timeframe, split)
tracking.log_metrics({f"agent_{k}": v for k, v in agent_metrics.items()})
tracking.log_frame(sequence_curves, "learning_curves.parquet")
tracking.log_frame(agent_curves, "agent_learning_curves.parquet")
tracking.log_frame(equity.reset_index(names="time"), "oos_equity.parquet")
display(segment_table(metrics))
segment_table(agent_metrics)

# %%
run.close()
print(f"MLflow run {run.run_id}: {checks}")
