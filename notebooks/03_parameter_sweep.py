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
# # Parameter sweep
#
# Backtests every combination of a grid on the **in-sample** bars only (before `oos_start`, or
# all but the last `oos_fraction`), shows the Sharpe ratio over the first two swept parameters,
# picks the best combination with its deflated Sharpe ratio (the probability that it beats the
# best of as many unskilled trials), then backtests that one combination over all the bars and
# logs it like `02_backtest_strategy` does, with `trials` = the grid size, the out-of-sample
# metrics and the whole grid as `grid.parquet`.
#
# `prism research run notebooks/03_parameter_sweep.ipynb -p grid "{'fast': [5, 10, 20], 'slow':
# [50, 100]}"`

# %%
from prism.backtest.engine import BacktestConfig, run_backtest
from prism.backtest.sweep import best, expand_grid, parse_condition, run_sweep
from prism.core.settings import load_settings
from prism.data.store import read_bars
from prism.db.engine import open_database
from prism.research import plots, tracking
from prism.research.data_gate import research_gate
from prism.research.evaluation import oos_start as out_of_sample_start
from prism.research.evaluation import segment_table, validation_tags
from prism.strategies import make_strategy

plots.use_notebook_renderer()

# %% tags=["parameters"]
strategy = "sma_crossover"
grid = {"fast": [5, 10, 15, 20, 30, 40, 50], "slow": [50, 75, 100, 150, 200]}
where = "fast<slow"
fixed_params = {}
symbols = ["SPX", "NDX"]
timeframe = "1d"
start = "1999-01-01"
end = "2018-12-31"
oos_start = None
oos_fraction = 0.3
commission_bps = 1.0
slippage_bps = 2.0
capital = 1_000_000.0
allow_gaps = False
parity_bars = 20
mlflow_run_id = None

# %%
settings = load_settings()
engine = open_database(settings)
run = tracking.notebook_run(
    settings,
    "03_parameter_sweep",
    mlflow_run_id,
    {
        "strategy": strategy,
        "grid": grid,
        "where": where,
        "fixed_params": fixed_params,
        "symbols": symbols,
        "timeframe": timeframe,
        "start": start,
        "end": end,
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
in_sample = bars[bars["time"] < split]
config = BacktestConfig(capital=capital, commission_bps=commission_bps, slippage_bps=slippage_bps)
combos = expand_grid(grid, parse_condition(where) if where else None)
table = run_sweep(in_sample, strategy, combos, config, fixed_params)
print(f"{len(combos)} combinations on {len(in_sample):,} in-sample bars (before {split.date()})")
table.sort_values("sharpe", ascending=False).head(10)

# %%
axes = list(grid)
plots.sweep_heatmap(table, axes[0], axes[1 if len(axes) > 1 else 0])

# %%
top = best(table)
chosen_params = {**fixed_params, **{name: top[name] for name in grid}}
print(
    f"best {chosen_params}: in-sample Sharpe {top['sharpe']:.2f}, deflated Sharpe ratio "
    f"{top['deflated_sharpe']:.3f} given {top['trials']} trials"
)

# %%
chosen = make_strategy(strategy, chosen_params)
result = run_backtest(bars, chosen, config)
checks = validation_tags(chosen, bars, config, parity_bars)
metrics = tracking.log_backtest(
    chosen,
    bars,
    result,
    symbols,
    split,
    {**gate, **checks},
    int(top["trials"]),
    parity_bars=parity_bars,
)
tracking.log_metrics(
    {"deflated_sharpe": top["deflated_sharpe"], "sweep_best_sharpe": top["sharpe"]}
)
tracking.log_frame(table, "grid.parquet")
segment_table(metrics)

# %%
run.close()
print(f"MLflow run {run.run_id}: {checks}")
