"""Risk: historical and parametric VaR and CVaR at 95% and 99% of the live book, utilization of
each risk limit, correlation of the holdings, and the largest contributors to risk."""

from __future__ import annotations

import plotly.express as px
import streamlit as st
from common import pick_deployment, query, refreshing

from prism.monitoring import fmt

st.title("Risk")
deployment = pick_deployment()


@refreshing
def body() -> None:
    report = query("risk", deployment)
    measured = report.measured if report is not None else {}
    if report is None:
        st.info(
            f"{deployment} holds nothing with a year of daily closes behind it, so there is no "
            "portfolio risk to measure yet (the runner opens positions on its next cycle)."
        )
    else:
        st.caption(
            f"One-day losses of today's book ({fmt.money(report.equity)} equity) over "
            f"{report.observations} daily returns of its holdings."
        )
        cols = st.columns(4)
        for col, (_, row) in zip(cols, report.var.iterrows(), strict=False):
            col.metric(
                f"{row['method']} VaR {row['confidence']:.0%}",
                fmt.money(row["var_money"]),
                f"CVaR {fmt.money(row['cvar_money'])}",
                delta_color="off",
                delta_arrow="off",
            )
        st.dataframe(
            report.var,
            hide_index=True,
            column_config={
                "confidence": st.column_config.NumberColumn(format="percent"),
                "var": st.column_config.NumberColumn("VaR", format="percent"),
                "cvar": st.column_config.NumberColumn("CVaR", format="percent"),
                "var_money": st.column_config.NumberColumn("VaR ($)", format="dollar"),
                "cvar_money": st.column_config.NumberColumn("CVaR ($)", format="dollar"),
            },
        )
        left, right = st.columns(2)
        with left:
            st.subheader("Largest contributors to risk")
            contributors = report.contributors
            figure = px.bar(contributors, x="symbol", y="share", title="share of volatility")
            figure.update_yaxes(tickformat=".0%")
            figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
            st.plotly_chart(figure, width="stretch")
            st.dataframe(
                contributors,
                hide_index=True,
                column_config={
                    c: st.column_config.NumberColumn(format="percent")
                    for c in ("weight", "volatility", "contribution", "share")
                },
            )
        with right:
            st.subheader("Correlation of the holdings")
            heat = px.imshow(
                report.correlation,
                zmin=-1,
                zmax=1,
                color_continuous_scale="RdBu_r",
                text_auto=".2f",
            )
            heat.update_layout(height=360, margin={"l": 10, "r": 10, "t": 20, "b": 10})
            st.plotly_chart(heat, width="stretch")

    st.subheader("Risk limits")
    limits = query("limits", deployment, measured)
    if limits.empty:
        st.info(
            "No risk limit is configured: add rows to config.risk_limits (key, value, "
            "description, updated_by), e.g. max_gross_exposure = 1.0."
        )
        return
    st.dataframe(
        limits,
        hide_index=True,
        column_config={
            "utilization": st.column_config.ProgressColumn(
                format="percent", min_value=0.0, max_value=1.0
            )
        },
    )


body()
