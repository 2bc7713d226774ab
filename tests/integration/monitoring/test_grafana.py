"""Grafana's provisioning stays honest: the datasource and dashboard files parse, every panel
uses the provisioned datasource, and every panel's SQL (Grafana macros replaced by a literal
time range) runs as the read-only role against a real database holding a little of each kind
of row, and returns rows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, text

from prism import ledger
from prism.core.events import record_event
from prism.data.store import upsert_bars

ROOT = Path(__file__).resolve().parents[3]
PROVISIONING = ROOT / "dashboards" / "grafana" / "provisioning"
FROM, TO = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
WIDTHS = {"1m": "1 minute", "1h": "1 hour", "1d": "1 day", "$__interval": "1 hour"}


def _datasources() -> list[dict[str, Any]]:
    files = sorted((PROVISIONING / "datasources").glob("*.yml"))
    return [d for f in files for d in yaml.safe_load(f.read_text())["datasources"]]


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        f.name: json.loads(f.read_text())
        for f in sorted((PROVISIONING / "dashboards").glob("*.json"))
    }


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, board in _dashboards().items() for p in board["panels"]]


def expand_macros(sql: str) -> str:
    """Return ``sql`` with Grafana's PostgreSQL macros and the dashboards' variables replaced by
    what Grafana would send for the range 2000-2100 and the deployment ``demo``."""

    def group(match: re.Match[str], alias: bool) -> str:
        column, width = (part.strip().strip("'") for part in match.group(1).split(","))
        bucket = f"date_bin('{WIDTHS[width]}', {column}, TIMESTAMPTZ '2000-01-01')"
        return f'{bucket} AS "time"' if alias else bucket

    sql = re.sub(r"\$__timeGroupAlias\(([^)]*)\)", lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^)]*)\)", lambda m: group(m, False), sql)
    sql = re.sub(
        r"\$__timeFilter\(([^)]*)\)",
        lambda m: f"{m.group(1)} BETWEEN '{FROM}' AND '{TO}'",
        sql,
    )
    sql = sql.replace("$__timeFrom()", f"'{FROM}'").replace("$__timeTo()", f"'{TO}'")
    return sql.replace("$deployment", "'demo'")


def test_the_datasource_is_the_prism_database_read_through_the_read_only_role():
    (source,) = _datasources()

    assert source["type"] == "grafana-postgresql-datasource"
    assert source["user"] == "prism_reader"
    assert source["jsonData"]["database"] == "prism"
    assert source["secureJsonData"]["password"] == "${PRISM_READER_PASSWORD}"


def test_there_are_dashboards_for_data_latency_events_and_equity():
    titles = {board["title"] for board in _dashboards().values()}
    uid = _datasources()[0]["uid"]

    assert titles == {
        "Prism · data latency and ingest",
        "Prism · system events",
        "Prism · equity and P&L",
    }
    for name, panel in _panels():
        assert panel["datasource"]["uid"] == uid, f"{name}: {panel['title']}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid


def test_macro_expansion_leaves_no_grafana_syntax():
    for _, panel in _panels():
        for target in panel["targets"]:
            assert "$" not in expand_macros(target["rawSql"]), target["rawSql"]


@pytest.fixture
def filled(engine: Engine) -> Engine:
    """One minute bar, a quarantined row, events of two severities, a deployment with two
    snapshots and a fill."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    upsert_bars(
        engine,
        pd.DataFrame(
            {
                "time": [pd.Timestamp(now - timedelta(minutes=1))],
                "symbol": ["SPX"],
                "timeframe": ["1m"],
                "open": [10.0],
                "high": [11.0],
                "low": [9.0],
                "close": [10.5],
                "volume": [100.0],
                "source": ["csv"],
            }
        ),
    )
    record_event(engine, "stale_feed", "warning", "data", "SPX 1m: no new bar")
    record_event(engine, "halt", "error", "runner", "drawdown limit")
    ledger.ensure_account(engine, "demo", Decimal("1000"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.quarantine (source, symbol, raw, rule, reason) "
                "VALUES ('csv', 'SPX', '{\"timeframe\": \"1m\"}', 'positive_prices', 'close <= 0')"
            )
        )
        for minutes, equity in ((2, 1000), (1, 990)):
            conn.execute(
                text(
                    "INSERT INTO trading.portfolio_snapshots (time, deployment, cash, "
                    "market_value, equity, gross_exposure, net_exposure) "
                    "VALUES (:t, 'demo', 500, :mv, :e, :mv, :mv)"
                ),
                {"t": now - timedelta(minutes=minutes), "e": equity, "mv": equity - 500},
            )
        order_id = conn.execute(
            text(
                "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, "
                "quantity, broker, strategy, decided_at) VALUES ('demo:SPX:1', 'demo', 'SPX', "
                "'buy', 1, 'paper', 'sma_crossover', :t) RETURNING id"
            ),
            {"t": now},
        ).scalar()
        conn.execute(
            text(
                "INSERT INTO trading.fills (fill_id, order_id, deployment, time, symbol, side, "
                "quantity, price, commission) VALUES ('f1', :o, 'demo', :t, 'SPX', 'buy', 1, "
                "10.5, 0.01)"
            ),
            {"o": order_id, "t": now},
        )
    return engine


@pytest.mark.parametrize(
    "panel", [p for _, p in _panels()], ids=[f"{n}:{p['title']}" for n, p in _panels()]
)
def test_every_panels_sql_runs_as_the_reader_and_returns_rows(filled, panel):
    for target in panel["targets"]:
        with filled.begin() as conn:
            conn.execute(text("SET LOCAL ROLE prism_reader"))
            rows = conn.execute(text(expand_macros(target["rawSql"]))).all()
        assert rows, f"{panel['title']} returned nothing"
        if target["format"] == "time_series":
            assert {"time", "metric", "value"} <= set(rows[0]._fields)


def test_the_deployment_variable_lists_the_accounts(filled):
    board = _dashboards()["prism-equity.json"]
    (variable,) = board["templating"]["list"]
    with filled.begin() as conn:
        conn.execute(text("SET LOCAL ROLE prism_reader"))
        names = conn.execute(text(variable["query"])).scalars().all()

    assert names == ["demo"]


def test_compose_provisions_grafana_and_turns_the_dashboard_login_on():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grafana, dashboard = services["grafana"], services["dashboard"]

    mounted = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounted["./dashboards/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert "PRISM_READER_PASSWORD" in grafana["environment"]
    assert dashboard["environment"]["PRISM_DASHBOARD_AUTH"] == "password"
    reader_url = dashboard["environment"]["PRISM_DASHBOARD_DATABASE_URL"]
    assert reader_url.startswith("postgresql://prism_reader:")
    assert reader_url.endswith("@db:5432/prism")
    assert "PRISM_DATABASE_URL" not in dashboard["environment"], "the dashboard has no owner URL"
