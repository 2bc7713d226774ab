"""Prism monitoring: positions, equity and P&L, drawdown, orders, and the champion model.

Run with ``make dashboard`` (or ``prism dashboard``). Read-only: everything shown comes from
:mod:`prism.reporting`.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from prism import reporting
from prism.config import load_settings
from prism.db.engine import open_database
from prism.errors import PrismError

st.set_page_config(page_title="Prism monitoring", layout="wide")
st.title("Prism — positions and risk")

settings = load_settings()


@st.cache_resource
def _engine():  # type: ignore[no-untyped-def]
    return open_database(settings)


try:
    engine = _engine()
    names = reporting.deployments(engine)
except PrismError as err:
    st.error(str(err))
    st.stop()

if not names:
    st.info(
        "No paper or live account has traded yet. Run `make demo` (or `prism demo --no-serve`)."
    )
    st.stop()

deployment = st.sidebar.selectbox(
    "deployment",
    names,
    index=names.index(settings.deployment) if settings.deployment in names else 0,
)
curve = reporting.equity_curve(engine, deployment)

if curve.empty:
    st.info(f"Deployment {deployment!r} has no portfolio snapshots yet.")
    st.stop()

last = curve.iloc[-1]
cols = st.columns(5)
cols[0].metric("equity", f"{last['equity']:,.0f}")
cols[1].metric("P&L", f"{last['pnl']:,.0f}", f"{last['pnl_pct']:+.2%}")
cols[2].metric(
    "drawdown", f"{last['drawdown']:.2%}", f"max {curve['drawdown'].min():.2%}", delta_color="off"
)
cols[3].metric("gross exposure", f"{last['gross_exposure'] / last['equity']:.0%}")
cols[4].metric("cash", f"{last['cash']:,.0f}")

figure = make_subplots(
    rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05
)
figure.add_trace(go.Scatter(x=curve["time"], y=curve["equity"], name="equity"), row=1, col=1)
figure.add_trace(
    go.Scatter(
        x=curve["time"],
        y=curve["drawdown"] * 100,
        name="drawdown %",
        fill="tozeroy",
        line={"color": "#c0392b"},
    ),
    row=2,
    col=1,
)
figure.update_layout(height=460, margin={"l": 10, "r": 10, "t": 30, "b": 10})
st.subheader("Equity and drawdown")
st.plotly_chart(figure, width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Positions")
    st.dataframe(reporting.positions(engine, deployment), hide_index=True)
with right:
    st.subheader("Champion model")
    report = reporting.champion_report(settings)
    if report is None:
        st.warning(
            "No model is aliased 'champion'. Promote one: `prism models promote --run RUN_ID`."
        )
    else:
        v = report.version
        st.markdown(
            f"**{v.name}** version **{v.version}** (aliases: {', '.join(v.aliases)}), "
            f"approved by {v.approved_by or 'unknown'}"
        )
        st.markdown(
            f"MLflow run `{v.run_id}` · git `{report.tags.get('git_commit', '?')[:10]}` · "
            f"data hash `{report.params.get('data_hash', '?')[:12]}`"
        )
        st.dataframe(
            {k: [round(val, 4)] for k, val in sorted(report.metrics.items())}, hide_index=True
        )

st.subheader("Orders")
st.dataframe(reporting.orders(engine, deployment), hide_index=True)
st.subheader("Decisions (audit)")
st.dataframe(reporting.decisions(engine, deployment), hide_index=True)
