"""Prism monitoring: what do I hold, what is it doing, what could it lose, is anything broken.

Run with ``prism dashboard`` (or ``make dashboard``). A multipage app: this entry point checks
the login (``PRISM_DASHBOARD_AUTH``) and routes to the pages in ``pages/``; every page reads
through :mod:`prism.monitoring` with the read-only role, cached and auto-refreshed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import engine, query, settings

from prism.core.errors import PrismError
from prism.monitoring import access, login

st.set_page_config(page_title="Prism monitoring", layout="wide")


def _secrets() -> Mapping[str, Any]:
    """Return Streamlit's secrets, or nothing when no secrets.toml exists."""
    try:
        return dict(st.secrets)
    except FileNotFoundError:
        return {}


def _logged_in() -> bool:
    """Return whether the visitor may see the pages, showing the login form if not."""
    mode = access.auth_mode(settings())
    if mode == "none":
        return True
    if mode == "oidc":
        access.check_oidc(_secrets())
        if st.user.is_logged_in:
            st.sidebar.caption(f"signed in as {st.user.get('email') or st.user.get('name')}")
            st.sidebar.button("Log out", on_click=st.logout)
            return True
        st.title("Prism monitoring")
        st.button("Log in", on_click=st.login)
        return False
    if st.session_state.get("authenticated"):
        return True
    st.title("Prism monitoring")
    with st.form("login"):
        attempt = st.text_input("password", type="password")
        if st.form_submit_button("Log in"):
            client = login.client_label(st.context.ip_address)
            outcome = login.attempt_login(engine(), settings(), client, attempt)
            if outcome.accepted:
                st.session_state["authenticated"] = True
                st.rerun()
            st.error(outcome.message)
    return False


try:
    if not _logged_in():
        st.stop()
    engine()
    st.sidebar.caption(f"reading as `{query('reading_as')}`")
except PrismError as err:
    st.error(str(err))
    st.stop()

PAGES = Path(__file__).resolve().parent / "pages"
navigation = st.navigation(
    [
        st.Page(
            PAGES / "overview_page.py", title="Overview", icon=":material/monitoring:", default=True
        ),
        st.Page(
            PAGES / "positions_page.py",
            url_path="positions",
            title="Positions",
            icon=":material/account_balance:",
        ),
        st.Page(
            PAGES / "orders_page.py",
            url_path="orders",
            title="Orders and fills",
            icon=":material/receipt_long:",
        ),
        st.Page(PAGES / "risk_page.py", url_path="risk", title="Risk", icon=":material/warning:"),
        st.Page(
            PAGES / "models_page.py",
            url_path="models",
            title="Models",
            icon=":material/model_training:",
        ),
        st.Page(
            PAGES / "data_health_page.py",
            url_path="data_health",
            title="Data health",
            icon=":material/database:",
        ),
        st.Page(
            PAGES / "research_page.py",
            url_path="research",
            title="Research",
            icon=":material/science:",
        ),
    ]
)
try:
    navigation.run()
except PrismError as err:
    st.error(str(err))
