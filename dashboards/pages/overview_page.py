"""Overview: equity against the benchmark, P&L, drawdown, exposure, deployments and their
circuit breakers, and the last alerts."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from common import NO_DEPLOYMENT, pick_deployment, query, refreshing, settings
from plotly.subplots import make_subplots

from prism.monitoring import fmt
from prism.monitoring.overview import summarize

st.title("Overview")
states = query("states")
if states.empty:
    st.info(NO_DEPLOYMENT)
    st.stop()
deployment = pick_deployment()
benchmark = st.sidebar.text_input("benchmark symbol", settings().dashboard_benchmark)


@refreshing
def body() -> None:
    curve = query("equity", deployment, benchmark)
    summary = summarize(curve)
    if summary is None:
        st.info(
            f"Deployment {deployment!r} has no portfolio snapshot yet: the runner writes one "
            "after each trade cycle (`python -m runner 60` replays the newest 60 bars)."
        )
    else:
        st.caption(f"{deployment} as of {summary.as_of:%Y-%m-%d %H:%M} UTC")
        cols = st.columns([1.4, 1.1, 1.1, 0.9, 0.75, 0.75])
        cols[0].metric("equity", fmt.money(summary.equity))
        cols[1].metric(
            "P&L today",
            fmt.signed_money(summary.pnl_today),
            fmt.percent(summary.pnl_today_pct, signed=True),
        )
        cols[2].metric(
            "P&L total",
            fmt.signed_money(summary.pnl_total),
            fmt.percent(summary.pnl_total_pct, signed=True),
        )
        cols[3].metric(
            "drawdown",
            fmt.percent(summary.drawdown),
            f"max {fmt.percent(summary.max_drawdown)}",
            delta_color="off",
            delta_arrow="off",
        )
        cols[4].metric("gross exposure", fmt.percent(summary.gross_exposure, 0))
        cols[5].metric("net exposure", fmt.percent(summary.net_exposure, 0))
        figure = make_subplots(
            rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05
        )
        figure.add_trace(go.Scatter(x=curve["time"], y=curve["equity"], name=deployment), 1, 1)
        if curve["benchmark"].notna().any():
            figure.add_trace(
                go.Scatter(
                    x=curve["time"],
                    y=curve["benchmark"],
                    name=f"{benchmark} ({fmt.percent(summary.benchmark_return, signed=True)})",
                    line={"dash": "dot"},
                ),
                1,
                1,
            )
        else:
            st.caption(f"No bars for benchmark {benchmark!r}: ingest it to compare.")
        figure.add_trace(
            go.Scatter(
                x=curve["time"],
                y=curve["drawdown"],
                name="drawdown",
                fill="tozeroy",
                line={"color": "#c0392b"},
            ),
            2,
            1,
        )
        figure.update_yaxes(tickprefix="$", tickformat=",.0f", row=1, col=1)
        figure.update_yaxes(tickformat=".1%", row=2, col=1)
        figure.update_layout(height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10})
        st.plotly_chart(figure, width="stretch")

    st.subheader("Deployments and circuit breakers")
    st.dataframe(
        states[
            [
                "deployment",
                "breaker",
                "equity",
                "last_snapshot",
                "enabled",
                "halt_reason",
                "halted_at",
                "strategy",
                "model_name",
                "model_alias",
                "timeframe",
            ]
        ],
        hide_index=True,
        column_config={"equity": st.column_config.NumberColumn(format="dollar")},
    )
    tripped = states[states["breaker"] == "tripped"]
    for row in tripped.itertuples():
        st.warning(f"Circuit breaker tripped on {row.deployment}: {row.halt_reason or 'no reason'}")

    st.subheader("Last alerts")
    alerts = query("alerts", 20)
    if alerts.empty:
        st.caption("No system events yet.")
    else:
        st.dataframe(alerts, hide_index=True)


body()
