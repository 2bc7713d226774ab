"""Models: champion and challenger of each deployment with their metrics and MLflow runs, and
the lineage of a chosen order."""

from __future__ import annotations

import streamlit as st
from common import query, refreshing

from prism.core.errors import PrismError
from prism.monitoring.models import lineage_available

st.title("Models")


@refreshing
def versions() -> None:
    table = query("models")
    if table.empty:
        st.info(
            "No model serves a deployment yet: promote a research run "
            "(`prism models promote --run RUN_ID`), or run `prism demo`."
        )
        return
    st.dataframe(
        table,
        hide_index=True,
        column_order=[
            "deployment",
            "alias",
            "model_name",
            "version",
            "sharpe",
            "oos_sharpe",
            "max_drawdown",
            "total_return",
            "n_trades",
            "link",
            "run_id",
            "approved_by",
            "approved_at",
            "status",
        ],
        column_config={
            "link": st.column_config.LinkColumn("MLflow run", display_text="open"),
            "max_drawdown": st.column_config.NumberColumn(format="percent"),
            "total_return": st.column_config.NumberColumn(format="percent"),
            "sharpe": st.column_config.NumberColumn(format="%.2f"),
            "oos_sharpe": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    if table["link"].isna().all():
        st.caption(
            "The runs live in a local MLflow store: browse them with "
            "`mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`."
        )


st.subheader("Champion and challenger")
versions()

st.subheader("Lineage of an order")
if not lineage_available():
    st.info(
        "Order lineage needs prism.registry.lineage, which this installation does not have yet."
    )
else:
    order_ids = query("order_ids", None, 200)
    if not order_ids:
        st.info("No order yet: lineage starts from an order the runner placed.")
    else:
        chosen = st.selectbox("order (client order id)", order_ids)
        try:
            st.dataframe(query("lineage", chosen), hide_index=True, height=560)
        except PrismError as err:
            st.warning(str(err))

st.subheader("Live against backtest")
deployments = query("deployments")
if not deployments:
    st.info("No deployment has traded yet: drift compares live trading with the backtest.")
else:
    measured = st.selectbox("deployment", deployments, key="drift-deployment")
    lines, signals, missed, caption = query("drift", measured)
    if lines.empty:
        st.info(f"No drift to show for {measured}: {caption}")
    else:
        st.caption(caption)
        st.dataframe(
            lines,
            hide_index=True,
            column_config={
                "amount": st.column_config.NumberColumn(format="%.2f"),
                "share_of_gap": st.column_config.NumberColumn(format="percent"),
            },
        )
        if not signals.empty:
            st.caption(f"{len(signals)} bar(s) where the live signal differed from the model's")
            st.dataframe(signals, hide_index=True)
        if not missed.empty:
            st.caption(f"{len(missed)} bar(s) the runner did not trade")
            st.dataframe(missed, hide_index=True)
