"""Positions: quantity, average and last price, market value, weight, unrealized and realized
P&L, per deployment and in total; and the target weights of each deployment's newest cycle
(``trading.signals``)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st
from common import pick_deployment, query, refreshing

from prism.monitoring import fmt
from prism.monitoring.positions import totals

st.title("Positions")
deployment = pick_deployment(allow_all=True)
show_closed = st.sidebar.checkbox("show closed positions", value=False)

MONEY = st.column_config.NumberColumn(format="dollar")


@refreshing
def body() -> None:
    book = query("positions", deployment)
    if book.empty:
        st.info(
            "No position yet: the runner opens them when a model's target weights call for a "
            "trade (`prism demo` trades the bundled data)."
        )
        return
    summed = totals(book)
    total = summed.iloc[-1]
    cols = st.columns(4)
    cols[0].metric("market value", fmt.money(total["market_value"]))
    cols[1].metric("unrealized P&L", fmt.signed_money(total["unrealized_pnl"]))
    cols[2].metric("realized P&L", fmt.signed_money(total["realized_pnl"]))
    cols[3].metric("open positions", fmt.number(total["open_positions"]))

    shown = book if show_closed else book[book["quantity"] != 0]
    st.subheader("Holdings")
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "quantity": st.column_config.NumberColumn(format="localized"),
            "average_price": MONEY,
            "last_price": MONEY,
            "market_value": MONEY,
            "weight": st.column_config.NumberColumn(format="percent"),
            "unrealized_pnl": MONEY,
            "realized_pnl": MONEY,
        },
    )
    st.subheader("Per deployment and in total")
    st.dataframe(
        summed,
        hide_index=True,
        column_config={
            c: MONEY for c in ("market_value", "gross", "unrealized_pnl", "realized_pnl")
        },
    )
    held = book[book["quantity"] != 0]
    if not held.empty:
        figure = px.bar(
            held,
            x="symbol",
            y="weight",
            color="deployment",
            barmode="group",
            title="weight of equity",
        )
        figure.update_yaxes(tickformat=".0%")
        figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        st.plotly_chart(figure, width="stretch")
    targets = query("signals", deployment)
    if not targets.empty:
        st.subheader("Target weights of the newest cycle")
        st.dataframe(
            targets,
            hide_index=True,
            column_config={
                "value": st.column_config.NumberColumn(format="%.4f"),
                "target_weight": st.column_config.NumberColumn(format="percent"),
            },
        )


body()
