"""Migration 0005: the platform tables and their constraints, system events, the 1h/1d rollups
of 1m bars, retention by timeframe, ``prism db info``, and downgrading past it."""

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from prism.cli.app import app
from prism.core.errors import ConfigError
from prism.core.events import SEVERITIES, recent_events, record_event
from prism.data.sources import Asset
from prism.data.store import ingest, upsert_bars
from prism.db.bars import bars_storage
from prism.db.migrate import (
    _alembic_config,
    current_revision,
    database_mode,
    head_revision,
    upgrade,
)
from prism.db.rollups import apply_policies, apply_retention, refresh_rollups
from tests.conftest import _pause_jobs

NEW_TABLES = {
    "trading": {"signals", "risk_snapshots"},
    "models": {"versions"},
    "config": {"strategies", "risk_limits"},
    "audit": {"system_events"},
}
START = pd.Timestamp("2026-03-02 00:00", tz="UTC")


class FrameSource:
    """A bar source serving a prepared frame, as a vendor would."""

    name = "synthetic"

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars

    def assets(self) -> list[Asset]:
        return [Asset(s, f"synthetic {s}") for s in sorted(self.bars["symbol"].unique())]

    def fetch(self) -> pd.DataFrame:
        return self.bars.copy()


def minute_bars(start: pd.Timestamp, days: int, seed: int) -> pd.DataFrame:
    """Random-walk 1m bars of two symbols with about 10% of the minutes missing, priced to the
    cent like quoted prices (Prism stores prices to at most 8 decimals)."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in ("AAA", "BBB"):
        times = pd.date_range(start, periods=days * 24 * 60, freq="1min")
        times = times[rng.random(len(times)) > 0.1]
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, len(times))))
        open_ = np.concatenate([[100.0], close[:-1]])
        spread = np.abs(rng.normal(0, 0.02, (2, len(times))))
        frames.append(
            pd.DataFrame(
                {
                    "time": times,
                    "symbol": symbol,
                    "timeframe": "1m",
                    "open": open_.round(2),
                    "high": (np.maximum(open_, close) + spread[0]).round(2),
                    "low": (np.minimum(open_, close) - spread[1]).round(2),
                    "close": close.round(2),
                    "volume": rng.integers(1, 10_000, len(times)).astype(float),
                    "source": "synthetic",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def resampled(bars: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The rollup computed by pandas: first/max/min/last/sum per symbol and bucket."""
    rolled = (
        bars.set_index("time")
        .groupby("symbol")
        .resample(rule)
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
        .reset_index()
    )
    return rolled.sort_values(["symbol", "time"]).reset_index(drop=True)


def stored_rollup(engine: Engine, view: str) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            text(
                f"SELECT symbol, time, open, high, low, close, volume FROM market_data.{view} "
                "ORDER BY symbol, time"
            ),
            conn,
        )
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def assert_rollup_matches(engine: Engine, bars: pd.DataFrame) -> None:
    for view, rule in (("ohlcv_1h", "1h"), ("ohlcv_1d", "1D")):
        expected = resampled(bars, rule)
        got = stored_rollup(engine, view)
        assert got[["symbol"]].equals(expected[["symbol"]])
        assert (got["time"].to_numpy() == expected["time"].to_numpy()).all()
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[column], expected[column], rtol=1e-12)


def test_the_platform_tables_exist(migrated_engine):
    inspector = inspect(migrated_engine)
    for schema, tables in NEW_TABLES.items():
        assert tables <= set(inspector.get_table_names(schema=schema))
    order_columns = {c["name"] for c in inspector.get_columns("orders", schema="trading")}
    assert {"status", "order_type", "limit_price", "stop_price", "client_order_id"} <= order_columns
    with migrated_engine.connect() as conn:
        labels = conn.execute(
            text("SELECT enum_range(NULL::audit.event_severity)::text[]")
        ).scalar_one()
    assert tuple(labels) == SEVERITIES


def test_the_database_refuses_an_unknown_severity_order_status_or_timeframe(engine):
    refused = [
        "INSERT INTO audit.system_events (event_type, severity, component, message) "
        "VALUES ('x', 'fatal', 'test', 'm')",
        "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, quantity, status, "
        "broker, strategy, decided_at) VALUES ('c1', 'd', 'AAA', 'buy', 1, 'done', 'paper', 's', "
        "now())",
        "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, order_type, "
        "quantity, broker, strategy, decided_at) VALUES ('c2', 'd', 'AAA', 'buy', 'iceberg', 1, "
        "'paper', 's', now())",
        "INSERT INTO config.strategies (deployment, strategy, symbols, timeframe, capital) "
        "VALUES ('d', 's', ARRAY['AAA'], '3m', 1000)",
        "INSERT INTO config.strategies (deployment, strategy, symbols, timeframe, capital) "
        "VALUES ('d', 's', ARRAY[]::text[], '1d', 1000)",
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.accounts (deployment, initial_capital, cash) "
                "VALUES ('d', 1, 1)"
            )
        )
        for statement in refused:
            with pytest.raises(DBAPIError), conn.begin_nested():
                conn.execute(text(statement))


def test_one_alias_points_at_one_version_of_a_model(engine):
    insert = text(
        "INSERT INTO models.versions (model_name, version, alias, mlflow_run_id, approved_by, "
        "approved_at, gate_results) VALUES ('m', :v, 'champion', :run, 'alice', now(), "
        'CAST(\'[{"gate": "min_sharpe", "passed": true}]\' AS jsonb))'
    )
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE models.versions"))
        conn.execute(insert, {"v": "1", "run": "r1"})
        with pytest.raises(DBAPIError), conn.begin_nested():
            conn.execute(insert, {"v": "2", "run": "r2"})
        conn.execute(text("TRUNCATE models.versions"))


def test_system_events_are_recorded_and_read_back_newest_first(engine):
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE audit.system_events"))
    record_event(engine, "gap", "warning", "data.health", "3 bars missing", {"symbol": "AAA"})
    with engine.begin() as conn:
        record_event(conn, "restart", "info", "live", "runner restarted")

    events = recent_events(engine, limit=5)

    assert [(e.event_type, e.severity) for e in events] == [
        ("restart", "info"),
        ("gap", "warning"),
    ]
    assert events[1].metadata == {"symbol": "AAA"}


def test_an_unknown_severity_is_refused_naming_the_valid_ones(engine):
    with pytest.raises(ConfigError, match="'fatal'; use one of info, warning, error, critical"):
        record_event(engine, "gap", "fatal", "data.health", "x")


def test_rollups_of_minute_bars_equal_a_pandas_resample_and_follow_new_bars(engine):
    first = minute_bars(START, days=3, seed=7)
    ingest(engine, FrameSource(first))
    assert_rollup_matches(engine, first)

    later = minute_bars(START + pd.Timedelta(days=3), days=1, seed=8)
    ingest(engine, FrameSource(later))
    assert_rollup_matches(engine, pd.concat([first, later], ignore_index=True))

    changed = later.iloc[:30].assign(high=lambda f: f["high"] + 5, volume=lambda f: f["volume"] + 1)
    upsert_bars(engine, changed)
    refresh_rollups(engine)
    everything = pd.concat([first, changed, later.iloc[30:]], ignore_index=True)
    assert_rollup_matches(engine, everything)


def test_rollup_buckets_outlive_the_minute_bars_they_were_computed_from(engine):
    first = minute_bars(START, days=2, seed=7)
    ingest(engine, FrameSource(first))
    daily_before = stored_rollup(engine, "ohlcv_1d")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM market_data.ohlcv WHERE timeframe = '1m'"))

    later = minute_bars(START + pd.Timedelta(days=2), days=1, seed=8)
    ingest(engine, FrameSource(later))

    expected = pd.concat([daily_before, stored_rollup_of(later)], ignore_index=True)
    expected = expected.sort_values(["symbol", "time"]).reset_index(drop=True)
    daily = stored_rollup(engine, "ohlcv_1d")
    assert len(daily_before) == 4
    assert (daily["time"].to_numpy() == expected["time"].to_numpy()).all()
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(daily[column], expected[column], rtol=1e-12)


def stored_rollup_of(bars: pd.DataFrame) -> pd.DataFrame:
    frame = resampled(bars, "1D")
    return frame[["symbol", "time", "open", "high", "low", "close", "volume"]]


def _bar_rows(conn: Connection, timeframe: str, times: list[datetime]) -> None:
    for t in times:
        conn.execute(
            text(
                "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, close, "
                "volume, source) VALUES (:t, 'AAA', :tf, 1, 1, 1, 1, 1, 'test')"
            ),
            {"t": t, "tf": timeframe},
        )


def test_retention_deletes_exactly_the_bars_older_than_each_timeframes_limit(engine, settings):
    now = datetime(2026, 7, 1, tzinfo=UTC)
    with engine.begin() as conn:
        _bar_rows(
            conn,
            "1m",
            [
                datetime(2025, 12, 31, 23, 59, tzinfo=UTC),
                datetime(2026, 1, 1, tzinfo=UTC),
                datetime(2026, 6, 30, tzinfo=UTC),
            ],
        )
        _bar_rows(conn, "5m", [datetime(2024, 6, 30, tzinfo=UTC), datetime(2024, 7, 2, tzinfo=UTC)])
        _bar_rows(conn, "1h", [datetime(2021, 6, 30, tzinfo=UTC), datetime(2021, 7, 2, tzinfo=UTC)])
        _bar_rows(conn, "1d", [datetime(1990, 1, 2, tzinfo=UTC)])

    deleted = apply_retention(engine, settings, now=now)

    # Plain PostgreSQL also trims the hourly rollup table (empty here); 1d is kept forever.
    rollups = {} if database_mode(engine) == "timescaledb" else {"market_data.ohlcv_1h": 0}
    assert deleted == {"1m": 1, "5m": 1, "1h": 1, **rollups}
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT timeframe, min(time) FROM market_data.ohlcv GROUP BY 1")
        ).all()
    assert dict(left) == {
        "1m": datetime(2026, 1, 1, tzinfo=UTC),
        "5m": datetime(2024, 7, 2, tzinfo=UTC),
        "1h": datetime(2021, 7, 2, tzinfo=UTC),
        "1d": datetime(1990, 1, 2, tzinfo=UTC),
    }


def test_a_retention_that_is_not_an_interval_names_the_setting(engine, settings):
    with pytest.raises(ConfigError, match="PRISM_RETENTION_5M='two years' is not an interval"):
        apply_retention(engine, settings.model_copy(update={"retention_5m": "two years"}))


@pytest.mark.timescaledb
@pytest.mark.parametrize(
    ("setting", "value", "hours"), [("retention_1m", "2 hours", 3), ("retention_1h", "2 days", 72)]
)
def test_a_retention_too_short_for_the_rollup_refresh_names_the_setting_and_the_minimum(
    engine, settings, setting, value, hours
):
    short = settings.model_copy(update={setting: value})

    with pytest.raises(ConfigError, match=rf"PRISM_{setting.upper()}='{value}' .* {hours} hours"):
        apply_policies(engine, short)
    assert apply_policies(engine, settings)


def test_db_info_json_reports_the_mode_the_rollups_and_the_policies(engine):
    result = CliRunner().invoke(app, ["db", "info", "--json"])

    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    with engine.connect() as conn:
        mode = conn.execute(
            text("SELECT value FROM config.database_info WHERE key = 'mode'")
        ).scalar()
    assert info["mode"] == mode
    assert info["revision"] == head_revision()
    names = {r["name"] for r in info["rollups"]}
    assert names == {"market_data.ohlcv_1h", "market_data.ohlcv_1d"}
    policies = {p["timeframe"]: p["keep"] for p in info["policies"]}
    assert policies == {"1m": "6 months", "5m": "2 years", "1h": "5 years", "1d": "forever"}
    assert {p["table"] for p in info["policies"]} == {
        bars_storage(tf) for tf in ("1m", "5m", "1h", "1d")
    }
    assert "market_data.bars_1d" in info["row_counts"]


def test_migrations_downgrade_to_0003_and_upgrade_again(migrated_engine):
    config = _alembic_config()
    with migrated_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    _pause_jobs(migrated_engine)
    assert current_revision(migrated_engine) == "0003"
    assert "system_events" not in inspect(migrated_engine).get_table_names(schema="audit")

    assert upgrade(migrated_engine) == head_revision()
    assert "system_events" in inspect(migrated_engine).get_table_names(schema="audit")


@pytest.mark.timescaledb
def test_on_timescaledb_the_rollups_are_continuous_aggregates_with_policies(
    timescale_engine, settings
):
    from prism.db.info import describe

    refresh_rollups(timescale_engine)

    info = describe(timescale_engine, settings)
    assert info.mode == "timescaledb"
    assert {"trading.signals", "trading.risk_snapshots"} <= set(info.hypertables)
    assert {r["kind"] for r in info.rollups} == {"continuous aggregate"}
    procs = [j["proc_name"] for j in info.jobs]
    assert procs.count("policy_refresh_continuous_aggregate") == 2
    assert procs.count("policy_compression") == 6
    assert procs.count("policy_retention") == 1
    retention = [j["config"] for j in info.jobs if j["proc_name"] == "delete_old_bars"]
    assert len(retention) == 3
    assert any('"keep": "6 months"' in c and '"timeframe": "1m"' in c for c in retention)
