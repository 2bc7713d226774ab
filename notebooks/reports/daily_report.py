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
# # Daily report
#
# One UTC day of each live deployment: its P&L, the positions held at the end of the day,
# the risk of its equity (VaR and CVaR), and every fill of the day. The runner's `daily_report`
# flow executes it each day and saves it as HTML under the workspace's `reports/` folder; run it
# by hand with `prism report daily --date 2024-01-02 [--deployment NAME]`, or here in JupyterLab.
#
# Parameters: `report_date` (ISO date, UTC; empty means today) and `deployment` (empty means
# every deployment).

# %%
import pandas as pd
import plotly.io as pio
from IPython.display import Markdown, display

from prism.core.settings import load_settings
from prism.db.engine import open_database
from prism.monitoring import daily

pio.renderers.default = "plotly_mimetype+notebook"  # interactive here, kept in the HTML

# %% tags=["parameters"]
report_date = None
deployment = None

# %%
settings = load_settings()
engine = open_database(settings)
day = daily.report_day(report_date)
names = daily.report_deployments(engine, deployment)
display(
    Markdown(f"**Report for {day.isoformat()} (UTC)**, deployments: {', '.join(names) or 'none'}")
)
if not names:
    display(
        Markdown(
            "No trading account exists yet, so there is nothing to report. Start the runner "
            "(`prism runner serve`) or replay a stretch of history (`prism runner replay "
            "--deployment NAME --start … --end …`), then run this report again."
        )
    )

# %%
for name in names:
    pnl = daily.pnl_on(engine, name, day)
    display(Markdown(f"## {name}: P&L {pnl.pnl:+,.2f} ({pnl.pnl_pct:+.2%})"))
    display(pnl.as_frame())

# %% [markdown]
# ## Positions at the end of the day

# %%
for name in names:
    held = daily.positions_at(engine, name, day)
    if held.empty:
        display(Markdown(f"**{name}** held nothing at the end of {day}: no fill had opened one."))
        continue
    display(Markdown(f"**{name}**"))
    display(held)
    daily.positions_figure(held, f"{name}: market value by symbol").show()

# %% [markdown]
# ## Equity and risk

# %%
for name in names:
    equity = daily.equity_until(engine, name, day)
    if equity.empty:
        display(
            Markdown(
                f"**{name}** has no portfolio snapshot up to {day}; the runner writes one "
                "each trade cycle."
            )
        )
        continue
    daily.equity_figure(equity, day, f"{name}: equity up to {day}").show()
    risk = daily.risk_of(equity.set_index("time")["equity"])
    if risk is None:
        display(
            Markdown(
                f"**{name}**: {len(equity)} snapshot(s) so far; VaR and CVaR need at least "
                f"{daily.MIN_RETURNS + 1}. They appear once the runner has traded longer."
            )
        )
    else:
        display(Markdown(f"**{name}**: VaR and CVaR of one bar's change in equity"))
        display(risk)

# %% [markdown]
# ## Live against backtest
#
# The deployment's live history up to the end of the day re-simulated by the backtester on the
# same bars; the gap between live and simulated P&L split into signals, orders cut by risk
# limits, fill prices, fees, timing (missed or late cycles) and what is left (`prism runner
# drift` prints the same).

# %%
for name in names:
    drifted, why = daily.drift_until(engine, settings, name, day)
    if drifted is None:
        display(Markdown(f"**{name}**: no drift to show ({why})."))
        continue
    display(
        Markdown(
            f"**{name}**: live {drifted.live_pnl:+,.2f} against simulated "
            f"{drifted.simulated_pnl:+,.2f} over {drifted.bars} bars (model {drifted.model})"
        )
    )
    display(drifted.contributions_frame())
    if drifted.missed_cycles:
        display(Markdown(f"{len(drifted.missed_cycles)} bar(s) not traded:"))
        display(pd.DataFrame([m.__dict__ for m in drifted.missed_cycles]))
    if drifted.signal_differences:
        display(Markdown(f"{len(drifted.signal_differences)} signal(s) differed from the model:"))
        display(pd.DataFrame([d.__dict__ for d in drifted.signal_differences]))
    if drifted.risk_limited:
        display(Markdown(f"{len(drifted.risk_limited)} order(s) cut by risk limits:"))
        display(pd.DataFrame([r.__dict__ for r in drifted.risk_limited]))

# %% [markdown]
# ## Fills of the day

# %%
for name in names:
    fills = daily.fills_on(engine, name, day)
    if fills.empty:
        display(Markdown(f"**{name}** had no fill on {day}."))
    else:
        display(Markdown(f"**{name}**: {len(fills)} fill(s)"))
        display(fills)

# %% [markdown]
# ## Warnings and alerts of the day

# %%
events = daily.events_on(engine, day, deployment)
if events.empty:
    display(Markdown(f"No warning, error or critical event on {day}."))
else:
    display(events)
