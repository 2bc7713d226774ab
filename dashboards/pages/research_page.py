"""Research: a leaderboard of recent MLflow runs by a chosen metric."""

from __future__ import annotations

import plotly.express as px
import streamlit as st
from common import query, refreshing

from prism.monitoring.research import LOWER_IS_BETTER

st.title("Research")
names = query("metric_names")
if not names:
    st.info(
        "No research run yet: `prism research run notebooks/02_backtest_strategy.ipynb` "
        "tracks one in MLflow."
    )
    st.stop()
metric = st.sidebar.selectbox("rank by", names)
limit = st.sidebar.slider("runs shown", 5, 100, 25)


@refreshing
def body() -> None:
    board = query("leaderboard", metric, limit)
    order = "lowest" if metric in LOWER_IS_BETTER else "highest"
    st.caption(f"The newest runs that logged {metric}, {order} first.")
    figure = px.bar(board, x="run_name", y="metric", color="experiment", title=metric)
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(figure, width="stretch")
    st.dataframe(
        board,
        hide_index=True,
        column_config={
            "metric": st.column_config.NumberColumn(metric, format="%.4f"),
            "link": st.column_config.LinkColumn("MLflow run", display_text="open"),
            "max_drawdown": st.column_config.NumberColumn(format="percent"),
            "total_return": st.column_config.NumberColumn(format="percent"),
        },
    )


body()
