"""Orders and fills, filtered by date, symbol, status and deployment, with slippage against
the decision price and commission."""

from __future__ import annotations

import plotly.express as px
import streamlit as st
from common import NO_DEPLOYMENT, query, refreshing

from prism.monitoring import fmt
from prism.monitoring.orders import OrderFilter, cost_summary

st.title("Orders and fills")
choices = query("choices")
if not choices.deployments:
    st.info(f"No order yet. {NO_DEPLOYMENT}")
    st.stop()

with st.sidebar:
    span = st.date_input(
        "decided between",
        value=(choices.first, choices.last),
        min_value=choices.first,
        max_value=choices.last,
    )
    deployments = st.multiselect("deployment", choices.deployments)
    symbols = st.multiselect("symbol", choices.symbols)
    statuses = st.multiselect("status", choices.statuses)

start, end = (span[0], span[-1]) if isinstance(span, tuple) and span else (None, None)
where = OrderFilter(
    start=start,
    end=end,
    symbols=tuple(symbols),
    statuses=tuple(statuses),
    deployments=tuple(deployments),
)
MONEY = st.column_config.NumberColumn(format="dollar")
PRICE = st.column_config.NumberColumn(format="dollar")


@refreshing
def body() -> None:
    found = query("orders", where)
    if found.empty:
        st.info("No order matches these filters; widen the dates or clear a filter.")
        return
    costs = cost_summary(found)
    cols = st.columns(5)
    cols[0].metric("orders", fmt.number(costs.orders))
    cols[1].metric("filled", fmt.number(costs.filled))
    cols[2].metric("filled notional", fmt.money(costs.notional))
    cols[3].metric("commission", fmt.money(costs.commission, decimals=2))
    cols[4].metric(
        "slippage",
        fmt.money(costs.slippage_cost, decimals=2),
        fmt.bps(costs.slippage_bps),
        delta_color="inverse",
    )
    st.subheader("Orders")
    st.dataframe(
        found,
        hide_index=True,
        column_config={
            "decision_price": PRICE,
            "average_fill_price": PRICE,
            "slippage_bps": st.column_config.NumberColumn("slippage (bp)", format="%.2f"),
            "slippage_cost": MONEY,
            "commission": PRICE,
        },
    )
    measured = found.dropna(subset=["slippage_bps"])
    if not measured.empty:
        figure = px.histogram(
            measured,
            x="slippage_bps",
            color="side",
            nbins=30,
            title="slippage against the decision price (bp; positive = cost)",
        )
        figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(figure, width="stretch")
    st.subheader("Fills")
    st.dataframe(
        query("fills", where),
        hide_index=True,
        column_config={"price": PRICE, "notional": MONEY, "commission": PRICE},
    )


body()
