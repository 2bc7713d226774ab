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
# # Explore the stored bars
#
# Coverage of every series, its open gaps against the exchange calendar (`prism data gaps`),
# the rows validation quarantined, and the distribution of bar returns per symbol. The run is
# tracked like any other: the data hash and span, the counts as metrics, the tables as Parquet.
#
# `prism research run notebooks/01_explore_data.ipynb -p symbols SPX,NDX -p start 2010-01-01`

# %%
from IPython.display import display

from prism.core.settings import load_settings
from prism.data.store import read_bars, stored_symbols
from prism.db.engine import open_database
from prism.research import exploration, plots, tracking

plots.use_notebook_renderer()

# %% tags=["parameters"]
symbols = []
timeframe = "1d"
start = None
end = None
mlflow_run_id = None

# %%
settings = load_settings()
engine = open_database(settings)
run = tracking.notebook_run(
    settings,
    "01_explore_data",
    mlflow_run_id,
    {"symbols": symbols, "timeframe": timeframe, "start": start, "end": end},
)
chosen = symbols or stored_symbols(engine, timeframe)
coverage = exploration.coverage(engine, chosen, timeframe)
display(coverage)

# %%
gaps = exploration.gaps(engine, chosen, timeframe, start, end)
print(f"{len(gaps)} open gap(s), {int(gaps['missing'].sum())} missing bar(s)")
gaps.head(20)

# %%
plots.coverage_figure(coverage, gaps)

# %%
quarantined = exploration.quarantine_summary(engine, chosen)
display(quarantined)

# %%
bars = read_bars(engine, chosen, start, end, timeframe)
returns = exploration.bar_returns(bars)
statistics = exploration.return_statistics(returns)
display(statistics)

# %%
plots.returns_histogram(returns)

# %%
tracking.log_data(bars)
tracking.log_frame(coverage, "coverage.parquet")
tracking.log_frame(gaps, "gaps.parquet")
tracking.log_frame(statistics, "return_statistics.parquet")
tracking.log_metrics(
    {
        "n_bars": len(bars),
        "n_symbols": len(chosen),
        "n_gaps": len(gaps),
        "missing_bars": int(gaps["missing"].sum()),
        "quarantined_rows": int(quarantined["n_rows"].sum()),
    }
)
run.close()
print(f"MLflow run {run.run_id}")
