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
# # Backtest a strategy
#
# Reads bars from Prism's database (refusing bars with open gaps or a stale feed unless
# `allow_gaps`), backtests any registered strategy by name (decided at a bar's close, filled at
# the next bar's open, with commission and slippage), checks it for look-ahead and for parity
# with the live runner's bar-by-bar calls, and logs one MLflow run: parameters, whole-period,
# in-sample and out-of-sample metrics (the last `oos_fraction` of the bars, or from
# `oos_start`), the tear sheet, equity, trades and the strategy as a pyfunc model.
#
# `prism research run notebooks/02_backtest_strategy.ipynb -p fast 10 -p slow 50`, or any
# strategy with its parameters as a dict: `-p strategy time_series_momentum -p strategy_params
# "{'lookback': 126}"` (`fast` and `slow` are then ignored). `prism strategies` lists them all.

# %%
from prism.backtest.engine import BacktestConfig, run_backtest
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
strategy_params = {}
fast = 10
slow = 50
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
trials = 1
mlflow_run_id = None

# %%
settings = load_settings()
engine = open_database(settings)
chosen = make_strategy(strategy, strategy_params or {"fast": fast, "slow": slow})
run = tracking.notebook_run(
    settings,
    "02_backtest_strategy",
    mlflow_run_id,
    {
        "strategy": strategy,
        "strategy_params": strategy_params,
        "fast": fast,
        "slow": slow,
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
        "trials": trials,
    },
)

# %%
bars = read_bars(engine, symbols, start, end, timeframe)
gate = research_gate(engine, symbols, timeframe, start, end, allow_gaps)
split = out_of_sample_start(bars, oos_start, oos_fraction)
print(f"in sample before {split.date()}, out of sample from it; data gate: {gate}")
bars.groupby("symbol")["time"].agg(["min", "max", "count"])

# %%
config = BacktestConfig(capital=capital, commission_bps=commission_bps, slippage_bps=slippage_bps)
result = run_backtest(bars, chosen, config)
checks = validation_tags(chosen, bars, config, parity_bars)
print(checks)

# %%
sheet = tracking.backtest_tear_sheet(chosen, bars, result, symbols)
sheet.show()

# %%
metrics = tracking.log_backtest(
    chosen, bars, result, symbols, split, {**gate, **checks}, trials, sheet, parity_bars
)
segment_table(metrics)

# %%
result.trades.tail(10)

# %%
run.close()
print(f"MLflow run {run.run_id}")
