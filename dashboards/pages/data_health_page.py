"""Data health: freshness, open gaps and quarantined rows per symbol and timeframe."""

from __future__ import annotations

import streamlit as st
from common import query, refreshing

from prism.monitoring import fmt

st.title("Data health")


@refreshing
def body() -> None:
    report = query("health")
    series = report.series
    if series.empty:
        st.info("No bars stored yet: `prism data ingest bundled` loads the S&P 500 and NASDAQ.")
        return
    stale = series[series["staleness"].isin(["warning", "error"])]
    cols = st.columns(4)
    cols[0].metric("series", fmt.number(len(series)))
    cols[1].metric("stale feeds", fmt.number(len(stale)))
    cols[2].metric("open gaps", fmt.number(series["gaps"].sum()))
    cols[3].metric("quarantined rows", fmt.number(series["quarantined"].sum()))
    for row in stale.itertuples():
        st.warning(f"{row.symbol} {row.timeframe} from {row.source}: no new bar since {row.last}")
    shown = series.assign(age=series["age"].dt.floor("min").astype(str))
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "bars": st.column_config.NumberColumn(format="localized"),
            "missing": st.column_config.NumberColumn(format="localized"),
        },
    )
    st.subheader("Open gaps")
    if report.gaps.empty:
        st.caption("No open gap.")
    else:
        st.dataframe(report.gaps, hide_index=True)
        st.caption("`prism data backfill` refetches exactly these ranges from each bar's source.")
    st.subheader("Quarantined rows by rule")
    quarantine = query("quarantine")
    if quarantine.empty:
        st.caption("Nothing quarantined.")
    else:
        st.dataframe(quarantine, hide_index=True)


body()
