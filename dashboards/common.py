"""What every page shares: the settings, the read-only engine, cached queries, the sidebar's
deployment picker and a few display helpers. Queries live in :mod:`prism.monitoring`; this
module only caches them (``st.cache_data`` with ``PRISM_DASHBOARD_CACHE_TTL``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from sqlalchemy import Engine

from prism.core.settings import Settings, load_settings
from prism.monitoring import (
    access,
    drift,
    health,
    models,
    orders,
    overview,
    positions,
    reporting,
    research,
    risk,
)

TTL = load_settings().dashboard_cache_ttl
NO_DEPLOYMENT = (
    "No deployment yet: run `prism demo` (or `make demo`) to trade the bundled data on a paper "
    "account, or start the runner (`python -m runner.serve`)."
)


def settings() -> Settings:
    """Return this run's settings (read again on every rerun: cheap, and never stale)."""
    return load_settings()


def _identity(current: Settings) -> str:
    """Return what tells two databases apart, so caches never mix them."""
    url = current.dashboard_database_url or current.database_url
    secret = url.get_secret_value() if url is not None else ""
    return f"{current.home}|{secret}|{current.dashboard_role}|{current.mlflow_tracking_uri}"


@st.cache_resource(show_spinner="connecting to the database")
def _engine(identity: str) -> Engine:
    return access.reader_engine(settings())


def engine() -> Engine:
    """Return the read-only engine (see :mod:`prism.monitoring.access`), one per database."""
    return _engine(_identity(settings()))


QUERIES: dict[str, Callable[..., Any]] = {
    "reading_as": access.reading_as,
    "deployments": reporting.deployments,
    "states": overview.deployment_states,
    "equity": overview.equity_with_benchmark,
    "alerts": overview.recent_alerts,
    "positions": positions.positions,
    "signals": positions.latest_signals,
    "orders": orders.orders,
    "fills": orders.fills,
    "choices": orders.filter_choices,
    "risk": risk.risk_report,
    "limits": risk.limit_utilization,
    "models": lambda e: models.champions_and_challengers(e, settings()),
    "order_ids": models.recent_order_ids,
    "lineage": lambda e, order_id: models.order_lineage(e, settings(), order_id),
    "drift": lambda e, deployment: drift.drift_panel(e, settings(), deployment),
    "health": health.data_health,
    "quarantine": health.quarantine_by_rule,
    "metric_names": lambda e: research.metric_names(settings()),
    "leaderboard": lambda e, metric, limit: research.leaderboard(settings(), metric, limit),
}
"""Every read a page makes, by name: ``query(name, *args)`` calls it with the engine first."""


@st.cache_data(ttl=TTL, show_spinner=False)
def _query(identity: str, name: str, *args: Any) -> Any:
    return QUERIES[name](_engine(identity), *args)


def query(name: str, *args: Any) -> Any:
    """Return ``QUERIES[name](engine, *args)``, cached for ``PRISM_DASHBOARD_CACHE_TTL``
    seconds per database."""
    return _query(_identity(settings()), name, *args)


def pick_deployment(label: str = "deployment", allow_all: bool = False) -> str | None:
    """Show the sidebar's deployment picker (the configured one preselected) and return the
    choice (None for "all"); stop the page with the empty state when there is none."""
    names: list[str] = query("deployments")
    if not names:
        st.info(NO_DEPLOYMENT)
        st.stop()
    options = (["all"] if allow_all else []) + names
    preferred = settings().deployment
    default = options.index(preferred) if preferred in options else 0
    choice = st.sidebar.selectbox(label, options, index=default, key=f"pick-{label}")
    return None if choice == "all" else str(choice)


def refreshing(body: Callable[..., None]) -> Callable[..., None]:
    """Return ``body`` as a fragment that reruns every ``PRISM_DASHBOARD_REFRESH`` seconds
    (0 turns auto-refresh off)."""
    every = settings().dashboard_refresh
    return st.fragment(run_every=every if every > 0 else None)(body)
