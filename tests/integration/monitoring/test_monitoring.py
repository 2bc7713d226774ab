"""The monitoring read side against a real PostgreSQL filled by a short in-process replay of the
live cycle (SMA crossover on the bundled SPX and NDX bars), checked against SQL on the same
database and against values worked out independently (numpy, pandas, scipy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from prism import ledger
from prism.brokers.paper import PaperBroker
from prism.core.events import record_event
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, upsert_bars
from prism.db.rollups import refresh_rollups
from prism.live import steps
from prism.live.replay import replay_times
from prism.monitoring import access, health, orders, overview, positions, prices, risk
from prism.strategies import SmaCrossover
from tests.conftest import empty_tables

SYMBOLS = ("SPX", "NDX")
DEPLOYMENT = "watched"
CAPITAL = Decimal("1000000")
COSTS = {"commission_bps": 5.0, "slippage_bps": 3.0, "commission_per_share": 0.0}


@pytest.fixture(scope="module")
def replayed(migrated_engine: Engine) -> Engine:
    """The bundled bars and 60 replayed daily cycles of one paper deployment (July to September
    2018, a rising market, so the book still holds positions at the end)."""
    engine = migrated_engine
    empty_tables(engine)
    ingest(engine, ArchBarSource())
    strategy = SmaCrossover(fast=5, slow=20)
    config = steps.LiveConfig(deployment=DEPLOYMENT, symbols=SYMBOLS, capital=1e6, **COSTS)
    broker = PaperBroker(engine, config)
    ledger.ensure_account(engine, DEPLOYMENT, CAPITAL)
    wrapped = steps.LiveStrategy(
        strategy.name, "test-model", "1", strategy.warmup, strategy.target_weights
    )
    for as_of in replay_times(engine, list(SYMBOLS), 120)[:60]:
        steps.fill_open_orders(engine, broker, DEPLOYMENT, as_of)
        steps.decide(engine, broker, wrapped, config, as_of)
        steps.snapshot(engine, config, as_of)
    return engine


def _scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_positions_are_valued_at_the_newest_close_and_their_weights_and_cash_add_up_to_one(
    replayed,
):
    book = positions.positions(replayed, DEPLOYMENT)
    cash = float(
        _scalar(replayed, "SELECT cash FROM trading.accounts WHERE deployment = :d", d=DEPLOYMENT)
    )

    assert not book.empty
    for row in book.itertuples():
        close = _scalar(
            replayed,
            "SELECT close FROM market_data.ohlcv WHERE symbol = :s AND timeframe = '1d' "
            "ORDER BY time DESC LIMIT 1",
            s=row.symbol,
        )
        quantity = float(
            _scalar(
                replayed,
                "SELECT quantity FROM trading.positions WHERE deployment = :d AND symbol = :s",
                d=DEPLOYMENT,
                s=row.symbol,
            )
        )
        assert row.last_price == pytest.approx(close)
        assert row.market_value == pytest.approx(quantity * close)
        assert row.unrealized_pnl == pytest.approx((close - row.average_price) * quantity)
    equity = cash + book["market_value"].sum()
    assert book["weight"].sum() + cash / equity == pytest.approx(1.0)


def test_position_totals_add_each_deployment_and_end_with_the_total(replayed):
    book = positions.positions(replayed)
    summed = positions.totals(book)
    realized = float(_scalar(replayed, "SELECT sum(realized_pnl) FROM trading.positions"))

    assert summed["deployment"].tolist() == [DEPLOYMENT, "total"]
    assert summed.iloc[-1]["realized_pnl"] == pytest.approx(realized)
    assert summed.iloc[-1]["market_value"] == pytest.approx(book["market_value"].sum())


def test_the_equity_curve_has_the_benchmark_scaled_to_its_first_equity(replayed):
    curve = overview.equity_with_benchmark(replayed, DEPLOYMENT, "SPX")
    with replayed.connect() as conn:
        spx = pd.read_sql_query(
            text(
                "SELECT time, close FROM market_data.ohlcv WHERE symbol = 'SPX' "
                "AND timeframe = '1d' AND time BETWEEN (SELECT min(time) FROM "
                "trading.portfolio_snapshots WHERE deployment = :d) AND (SELECT max(time) FROM "
                "trading.portfolio_snapshots WHERE deployment = :d) ORDER BY time"
            ),
            conn,
            params={"d": DEPLOYMENT},
        )

    assert len(curve) == 60
    assert curve["benchmark"].iloc[0] == pytest.approx(curve["equity"].iloc[0])
    expected_ratio = spx["close"].iloc[-1] / spx["close"].iloc[0]
    assert curve["benchmark"].iloc[-1] / curve["benchmark"].iloc[0] == pytest.approx(expected_ratio)


def test_the_summary_reports_pnl_today_against_the_previous_days_snapshot(replayed):
    curve = overview.equity_with_benchmark(replayed, DEPLOYMENT, "SPX")
    with replayed.connect() as conn:
        last_two = [
            float(v)
            for v in conn.execute(
                text(
                    "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                    "ORDER BY time DESC LIMIT 2"
                ),
                {"d": DEPLOYMENT},
            ).scalars()
        ]

    summary = overview.summarize(curve)

    assert summary is not None
    assert summary.equity == pytest.approx(last_two[0])
    assert summary.pnl_today == pytest.approx(last_two[0] - last_two[1])
    assert summary.pnl_total == pytest.approx(last_two[0] - float(CAPITAL))
    assert summary.pnl_total_pct == pytest.approx(last_two[0] / float(CAPITAL) - 1)
    assert summary.max_drawdown <= summary.drawdown <= 0


def test_slippage_is_the_fill_against_the_decision_close_signed_as_a_cost(replayed):
    found = orders.orders(replayed, orders.OrderFilter())
    with replayed.connect() as conn:
        raw = pd.read_sql_query(
            text(
                "SELECT o.client_order_id, o.side, o.average_fill_price, b.close "
                "FROM trading.orders o JOIN market_data.ohlcv b ON b.symbol = o.symbol "
                "AND b.timeframe = '1d' AND b.time = o.decided_at WHERE o.filled_quantity > 0"
            ),
            conn,
        )

    merged = found.merge(raw, on="client_order_id")
    assert len(merged) == len(raw) > 3
    for row in merged.itertuples():
        fill, close = float(row.average_fill_price_y), float(row.close)
        cost = (fill - close) if row.side_x == "buy" else (close - fill)
        assert row.slippage_bps == pytest.approx(cost / close * 1e4)


def test_order_filters_narrow_by_symbol_status_and_date(replayed):
    everything = orders.orders(replayed, orders.OrderFilter())
    first_day = everything["decided_at"].min().date()

    only_spx = orders.orders(replayed, orders.OrderFilter(symbols=("SPX",)))
    filled = orders.orders(replayed, orders.OrderFilter(statuses=("filled",)))
    first = orders.orders(replayed, orders.OrderFilter(start=first_day, end=first_day))
    nobody = orders.orders(replayed, orders.OrderFilter(deployments=("nobody",)))

    assert set(only_spx["symbol"]) == {"SPX"}
    assert len(only_spx) == _scalar(
        replayed, "SELECT count(*) FROM trading.orders WHERE symbol = 'SPX'"
    )
    assert set(filled["status"]) == {"filled"}
    assert len(first) >= 1 and set(first["decided_at"].dt.date) == {first_day}
    assert nobody.empty


def test_the_cost_summary_adds_the_commission_of_every_order(replayed):
    costs = orders.cost_summary(orders.orders(replayed, orders.OrderFilter()))
    commission = float(_scalar(replayed, "SELECT sum(commission) FROM trading.fills"))
    notional = float(_scalar(replayed, "SELECT sum(price * quantity) FROM trading.fills"))

    assert costs.commission == pytest.approx(commission)
    assert costs.notional == pytest.approx(notional)
    assert costs.orders == _scalar(replayed, "SELECT count(*) FROM trading.orders")


def test_fills_join_their_orders_status(replayed):
    found = orders.fills(replayed, orders.OrderFilter(symbols=("NDX",)))

    assert len(found) == _scalar(
        replayed, "SELECT count(*) FROM trading.fills WHERE symbol = 'NDX'"
    )
    np.testing.assert_allclose(found["notional"], found["price"] * found["quantity"])


def _daily_closes(engine: Engine, symbols: list[str], start: datetime) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(
            text(
                "SELECT time, symbol, close FROM market_data.ohlcv WHERE timeframe = '1d' "
                "AND symbol = ANY(:s) AND time >= :start"
            ),
            conn,
            params={"s": symbols, "start": start},
        )
    return frame.pivot(index="time", columns="symbol", values="close").sort_index()


def test_value_at_risk_of_the_book_matches_its_hand_built_value_history(replayed):
    book = positions.positions(replayed, DEPLOYMENT)
    held = book[book["quantity"] != 0]
    report = risk.risk_report(replayed, DEPLOYMENT)
    cash = float(
        _scalar(replayed, "SELECT cash FROM trading.accounts WHERE deployment = :d", d=DEPLOYMENT)
    )
    start = held["price_time"].max() - timedelta(days=risk.LOOKBACK_DAYS)
    closes = _daily_closes(replayed, list(held["symbol"]), start.to_pydatetime())
    values = cash + (closes[list(held["symbol"])] * held.set_index("symbol")["quantity"]).sum(
        axis=1
    )
    r = values.pct_change().dropna().to_numpy()

    assert report is not None
    table = report.var.set_index(["method", "confidence"])
    assert table.loc[("historical", 0.95), "var"] == pytest.approx(-np.percentile(r, 5))
    z = norm.ppf(0.01)
    assert table.loc[("parametric", 0.99), "var"] == pytest.approx(-(r.mean() + z * r.std(ddof=1)))
    assert table.loc[("parametric", 0.99), "var_money"] == pytest.approx(
        table.loc[("parametric", 0.99), "var"] * report.equity
    )
    assert (table["cvar"] >= table["var"]).all()
    assert report.observations == len(r)


def test_risk_contributions_add_up_to_the_books_volatility(replayed):
    report = risk.risk_report(replayed, DEPLOYMENT)
    assert report is not None
    weights = report.contributors.set_index("symbol")["weight"]
    closes = _daily_closes(replayed, list(weights.index), datetime(2017, 12, 31, tzinfo=UTC))
    book_returns = closes.pct_change().dropna().iloc[-report.observations :] @ weights

    assert report.contributors["contribution"].sum() == pytest.approx(book_returns.std(ddof=1))
    assert report.contributors["share"].sum() == pytest.approx(1.0)
    assert report.correlation.loc["SPX", "NDX"] == pytest.approx(
        closes.pct_change().dropna().iloc[-report.observations :].corr().loc["SPX", "NDX"]
    )


def test_limit_utilization_prefers_the_runners_snapshot_then_measures_what_it_can(replayed):
    with replayed.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.risk_limits (key, value, description, updated_by) VALUES "
                "('max_gross_exposure', 2.0, 'gross / equity', 'test'), "
                "('max_drawdown', 0.2, 'peak to trough', 'test'), "
                "('max_order_notional', 1e7, 'largest order', 'test')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO trading.risk_snapshots (time, deployment, gross_exposure, "
                "net_exposure, limit_utilization) VALUES (now(), :d, 0, 0, "
                "'{\"max_drawdown\": 0.25}')"
            ),
            {"d": DEPLOYMENT},
        )
    try:
        report = risk.risk_report(replayed, DEPLOYMENT)
        assert report is not None
        book = positions.positions(replayed, DEPLOYMENT)
        gross = book["market_value"].abs().sum() / report.equity

        limits = risk.limit_utilization(replayed, DEPLOYMENT, report.measured).set_index("key")
    finally:
        with replayed.begin() as conn:
            conn.execute(text("DELETE FROM config.risk_limits"))
            conn.execute(text("DELETE FROM trading.risk_snapshots"))

    with replayed.connect() as conn:
        equities = [
            float(v)
            for v in conn.execute(
                text(
                    "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                    "ORDER BY time"
                ),
                {"d": DEPLOYMENT},
            ).scalars()
        ]
    assert report.measured["max_drawdown"] == pytest.approx(1 - equities[-1] / max(equities))
    assert limits.loc["max_gross_exposure", "utilization"] == pytest.approx(gross / 2.0)
    assert limits.loc["max_gross_exposure", "source"] == "computed here"
    assert limits.loc["max_drawdown", "utilization"] == pytest.approx(0.25)
    assert limits.loc["max_drawdown", "source"] == "runner snapshot"
    assert np.isnan(limits.loc["max_order_notional", "utilization"])
    assert limits.loc["max_order_notional", "source"] == "not measured"


def test_deployments_show_an_armed_breaker_and_a_disabled_configured_one(replayed):
    with replayed.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.strategies (deployment, strategy, symbols, timeframe, "
                "capital, enabled) VALUES ('paused', 'sma_crossover', ARRAY['SPX'], '1d', 1000, "
                "false)"
            )
        )
    try:
        states = overview.deployment_states(replayed).set_index("deployment")
    finally:
        with replayed.begin() as conn:
            conn.execute(text("DELETE FROM config.strategies"))

    assert states.loc[DEPLOYMENT, "breaker"] == "armed"
    assert states.loc[DEPLOYMENT, "equity"] == pytest.approx(
        float(
            _scalar(
                replayed,
                "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                "ORDER BY time DESC LIMIT 1",
                d=DEPLOYMENT,
            )
        )
    )
    assert states.loc["paused", "breaker"] == "disabled"
    assert pd.isna(states.loc["paused", "last_snapshot"])


def test_recent_alerts_keep_only_events_at_or_above_the_severity_asked(replayed):
    record_event(replayed, "test", "info", "monitor-test", "all good")
    record_event(replayed, "test", "error", "monitor-test", "broken")
    try:
        errors = overview.recent_alerts(replayed, 10, "error")
        everything = overview.recent_alerts(replayed, 10)
    finally:
        with replayed.begin() as conn:
            conn.execute(text("DELETE FROM audit.system_events WHERE component = 'monitor-test'"))

    assert errors["message"].tolist() == ["broken"]
    assert {"broken", "all good"} <= set(everything["message"])


def test_data_health_counts_the_bars_of_each_series(replayed):
    report = health.data_health(replayed, now=datetime(2019, 1, 2, tzinfo=UTC))
    counts = dict(
        pd.read_sql_query(
            text("SELECT symbol, count(*) AS n FROM market_data.ohlcv GROUP BY symbol"),
            replayed.connect(),
        ).itertuples(index=False)
    )

    assert set(report.series["symbol"]) == set(SYMBOLS)
    assert dict(zip(report.series["symbol"], report.series["bars"], strict=True)) == counts
    assert (report.series["age"] > pd.Timedelta(0)).all()


def test_the_reader_role_reads_everything_and_writes_nothing(replayed, settings):
    reader = access.reader_engine(settings)
    try:
        assert access.reading_as(reader) == "prism_reader"
        assert (
            positions.positions(reader, DEPLOYMENT)["symbol"].tolist()
            == positions.positions(replayed, DEPLOYMENT)["symbol"].tolist()
        )
        with pytest.raises(ProgrammingError, match="permission denied"), reader.begin() as conn:
            conn.execute(text("DELETE FROM trading.orders"))
    finally:
        reader.dispose()
    assert _scalar(replayed, "SELECT count(*) FROM trading.orders") > 0


def test_daily_closes_from_the_rollup_equal_those_computed_from_minute_bars(replayed):
    from tests.benchmarks.synthetic import random_walk_bars

    minutes = random_walk_bars(symbols=2, bars=3 * 1440, timeframe="1m", volatility=0.001)
    minutes["symbol"] = minutes["symbol"].map({"S000": "MINA", "S001": "MINB"})
    upsert_bars(replayed, minutes)
    refresh_rollups(replayed, ["MINA", "MINB"])
    try:
        rolled = prices.daily_closes(replayed, ["MINA", "MINB", "SPX"])
        raw = prices.daily_closes_raw(replayed, ["MINA", "MINB"])
        last = prices.last_prices(replayed, ["MINA"])
    finally:
        with replayed.begin() as conn:
            conn.execute(text("DELETE FROM market_data.ohlcv WHERE symbol IN ('MINA', 'MINB')"))
        refresh_rollups(replayed, ["MINA", "MINB"])

    pd.testing.assert_frame_equal(rolled[["MINA", "MINB"]].dropna(), raw, check_freq=False)
    assert len(raw) == 3
    assert rolled["SPX"].notna().sum() == _scalar(
        replayed, "SELECT count(*) FROM market_data.ohlcv WHERE symbol = 'SPX'"
    )
    newest = minutes[minutes["symbol"] == "MINA"].iloc[-1]
    assert last["close"].iloc[0] == pytest.approx(newest["close"])
    assert last["time"].iloc[0] == newest["time"]


def test_a_long_snapshot_history_is_thinned_to_the_last_snapshot_of_each_bucket(replayed):
    ledger.ensure_account(replayed, "busy", CAPITAL)
    with replayed.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.portfolio_snapshots (time, deployment, cash, market_value, "
                "equity, gross_exposure, net_exposure) "
                "SELECT TIMESTAMPTZ '2024-01-02 00:00+00' + n * INTERVAL '1 minute', 'busy', "
                "1000000, 0, 1000000 + n, 0, 0 FROM generate_series(0, 4999) AS n"
            )
        )
    try:
        thinned = overview.snapshots(replayed, "busy", max_points=3000)
        whole = overview.snapshots(replayed, "busy", max_points=10_000)
    finally:
        with replayed.begin() as conn:
            conn.execute(text("DELETE FROM trading.portfolio_snapshots WHERE deployment = 'busy'"))
            conn.execute(text("DELETE FROM trading.accounts WHERE deployment = 'busy'"))

    assert len(whole) == 5000
    assert len(thinned) == 1000  # 5,000 minutes in 5-minute buckets
    assert thinned["equity"].iloc[-1] == whole["equity"].iloc[-1] == 1_004_999
    assert thinned["equity"].iloc[0] == 1_000_004  # the last minute of the first bucket
    assert thinned["pnl"].iloc[-1] == pytest.approx(4_999)
