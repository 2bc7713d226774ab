"""Reading a query into a frame, and asking the catalog what exists."""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

TEXT_COLUMNS = frozenset(
    {
        "symbol",
        "side",
        "status",
        "deployment",
        "strategy",
        "model_name",
        "model_version",
        "client_order_id",
        "timeframe",
        "source",
        "severity",
        "component",
        "message",
        "event_type",
        "key",
        "description",
        "action",
        "reasoning",
        "halt_reason",
        "halted_by",
        "alias",
        "version",
        "run_id",
        "approved_by",
        "breaker",
        "staleness",
        "silent_for",
        "calendar",
    }
)
"""Columns kept as text even when every value looks like a number (e.g. a version "1")."""


def read_frame(engine: Engine, query: str, **params: Any) -> pd.DataFrame:
    """Return the rows of ``query`` with ``params``; numeric (Decimal) columns become float64,
    text columns named in :data:`TEXT_COLUMNS` stay text."""
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(query), conn, params=params)
    for column in frame.columns:
        if frame[column].dtype == object and column not in TEXT_COLUMNS:
            with contextlib.suppress(ValueError, TypeError):
                frame[column] = pd.to_numeric(frame[column])
    return frame


def columns_of(engine: Engine, table: str) -> set[str]:
    """Return the column names of ``schema.table`` (empty when it does not exist)."""
    schema, name = table.split(".", 1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": schema, "t": name},
        )
        return {r[0] for r in rows}


def relation_exists(engine: Engine, relation: str) -> bool:
    """Return whether a table, view or materialized view ``schema.name`` exists."""
    with engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": relation}).scalar()
        )
