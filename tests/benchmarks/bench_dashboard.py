"""The monitoring app on a year of minute bars: each page's render time once its queries are
cached, against the same page's queries run uncached straight on the raw 1m table.

The workspace: 50 symbols x every XNYS trading minute of 2023 (97,140 bars each, ~4.9M rows,
geometric random walks, fixed seed) loaded by COPY with their 1h/1d rollups; a paper
deployment holding 20 of them with hourly snapshots valued from the 1h rollup, one order, fill
and decision per held symbol and session (~5,000 orders), risk limits, system events, and a
small MLflow store (champion, challenger and research runs). ``PRISM_BENCH_DASHBOARD_SYMBOLS``
scales the symbol count down when loading ~4.9M rows is too slow for the machine.

Prism's figure is the page's render in Streamlit's AppTest (the page script, its cached
queries, plotly figures and element serialisation) on the second visit; the peer is the same
page's reads with no cache, closes computed from 1m bars instead of the rollups. Two more rows
compare those uncached reads with and without the rollups for the pages that read bars over a
long range (Overview's benchmark, Risk's year of daily closes).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import exchange_calendars
import mlflow
import pandas as pd
from sqlalchemy import Engine, text

from prism.core.settings import Settings
from prism.data.store import upsert_bars
from prism.db.rollups import refresh_rollups
from prism.monitoring import health, models, orders, overview, positions, research, risk
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row, run_alone
from tests.benchmarks.synthetic import random_walk_bars
from tests.benchmarks.workspace import fresh_workspace

SYMBOLS = int(os.environ.get("PRISM_BENCH_DASHBOARD_SYMBOLS", "50"))
HELD = 20
DEPLOYMENT = "bench"
APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = ("overview", "positions", "orders", "risk", "models", "data_health", "research")
PEER = "same reads uncached, closes from raw 1m"


def minute_bars(symbols: int) -> pd.DataFrame:
    """Return ``symbols`` random walks on every XNYS minute of 2023 (UTC)."""
    calendar = exchange_calendars.get_calendar("XNYS")
    minutes = calendar.minutes_in_range(
        pd.Timestamp("2023-01-03 14:30", tz="UTC"), pd.Timestamp("2023-12-29 21:00", tz="UTC")
    )
    bars = random_walk_bars(
        symbols, len(minutes), timeframe="1m", volatility=0.0008, drift=0.000002
    )
    bars["time"] = list(minutes) * symbols
    return bars


TRADING_SQL = [
    "INSERT INTO trading.accounts (deployment, initial_capital, cash) VALUES (:d, 1000000, 100000)",
    "INSERT INTO trading.positions (deployment, symbol, quantity, average_price) "
    "SELECT :d, symbol, 1000, 100 FROM unnest(CAST(:held AS text[])) AS symbol",
    "INSERT INTO trading.portfolio_snapshots (time, deployment, cash, market_value, equity, "
    "gross_exposure, net_exposure) SELECT time, :d, 100000, sum(close * 1000), "
    "100000 + sum(close * 1000), sum(close * 1000), sum(close * 1000) "
    "FROM market_data.ohlcv_1h WHERE symbol = ANY(:held) GROUP BY time",
    "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, quantity, status, "
    "broker, strategy, decided_at, filled_quantity, average_fill_price, commission) "
    "SELECT :d || ':' || symbol || ':' || time, :d, symbol, "
    "CASE WHEN extract(day FROM time)::int % 2 = 0 THEN 'buy' ELSE 'sell' END, 10, 'filled', "
    "'paper', 'sma_crossover', time + INTERVAL '20 hours', 10, close * 1.0002, close * 10 * 1e-4 "
    "FROM market_data.ohlcv_1d WHERE symbol = ANY(:held)",
    "INSERT INTO trading.fills (fill_id, order_id, deployment, time, symbol, side, quantity, "
    "price, commission) SELECT client_order_id || '/1', id, deployment, "
    "decided_at + INTERVAL '1 minute', symbol, side, 10, average_fill_price, commission "
    "FROM trading.orders",
    "INSERT INTO audit.decisions (time, deployment, decision_type, symbol, action, reasoning, "
    "signals, client_order_id) SELECT o.decided_at, o.deployment, 'rebalance', o.symbol, "
    "o.side, 'bench', jsonb_build_object('close', o.average_fill_price / 1.0002), "
    "o.client_order_id FROM trading.orders o",
    "INSERT INTO config.risk_limits (key, value, description, updated_by) VALUES "
    "('max_gross_exposure', 1.5, 'gross / equity', 'bench'), "
    "('max_position_pct', 0.2, 'largest position / equity', 'bench'), "
    "('max_drawdown', 0.25, 'fall from peak equity', 'bench')",
    "INSERT INTO audit.system_events (time, event_type, severity, component, message) "
    "SELECT TIMESTAMPTZ '2023-01-03' + n * INTERVAL '9 hours', 'bench', "
    "CAST((ARRAY['info', 'warning', 'error'])[1 + n % 3] AS audit.event_severity), 'bench', "
    "'event ' || n FROM generate_series(0, 999) AS n",
]


def _fill_trading(engine: Engine, held: list[str]) -> None:
    with engine.begin() as conn:
        for statement in TRADING_SQL:
            conn.execute(text(statement), {"d": DEPLOYMENT, "held": held})


class _Flat(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def _fill_mlflow(settings: Settings) -> None:
    from prism.research.tracking import configure

    configure(settings)
    for k in range(20):
        with mlflow.start_run(run_name=f"sweep-{k}"):
            mlflow.log_metrics({"sharpe": k / 10, "max_drawdown": 0.3 - k / 100, "n_trades": k})
    for alias, sharpe in (("challenger", 0.5), ("champion", 1.1)):
        with mlflow.start_run(run_name=alias):
            mlflow.log_metrics({"sharpe": sharpe, "max_drawdown": 0.1, "n_trades": 30})
            info = mlflow.pyfunc.log_model(name="model", python_model=_Flat(), pip_requirements=[])
        version = mlflow.register_model(info.model_uri, settings.model_name).version
        mlflow.MlflowClient().set_registered_model_alias(settings.model_name, alias, version)


def peer_reads(engine: Engine, settings: Settings) -> dict[str, Callable[[], Any]]:
    """Return, per page, its reads with no cache and closes from the raw 1m table."""
    everything = orders.OrderFilter()

    def overview_reads() -> None:
        overview.deployment_states(engine)
        overview.summarize(overview.equity_with_benchmark(engine, DEPLOYMENT, "S000", raw=True))
        overview.recent_alerts(engine, 20)

    def risk_reads() -> None:
        report = risk.risk_report(engine, DEPLOYMENT, raw=True)
        risk.limit_utilization(engine, DEPLOYMENT, report.measured if report else None)

    def models_reads() -> None:
        models.champions_and_challengers(engine, settings)
        models.recent_order_ids(engine, None, 200)

    return {
        "overview": overview_reads,
        "positions": lambda: positions.totals(positions.positions(engine, DEPLOYMENT)),
        "orders": lambda: (
            orders.filter_choices(engine),
            orders.cost_summary(orders.orders(engine, everything)),
            orders.fills(engine, everything),
        ),
        "risk": risk_reads,
        "models": models_reads,
        "data_health": lambda: (health.data_health(engine), health.quarantine_by_rule(engine)),
        "research": lambda: (
            research.metric_names(settings),
            research.leaderboard(settings, "sharpe", 25),
        ),
    }


def _render(app: Any, page: str) -> None:
    app.switch_page(f"pages/{page}_page.py").run()
    assert not app.exception, [e.message for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def run(notes: list[str]) -> list[Row]:
    """Return one row per page (cached render against uncached raw reads) and two rows for the
    rollups (uncached reads with and without them)."""
    from streamlit.testing.v1 import AppTest

    held = [f"S{k:03d}" for k in range(HELD)]
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_workspace(
            Path(folder), PRISM_DASHBOARD_CACHE_TTL="3600", PRISM_DASHBOARD_REFRESH="0"
        ) as (engine, settings),
    ):
        started = time.perf_counter()
        bars = minute_bars(SYMBOLS)
        upsert_bars(engine, bars)
        refresh_rollups(engine)
        loaded = time.perf_counter() - started
        _fill_trading(engine, held)
        _fill_mlflow(settings)
        os.environ["PRISM_DASHBOARD_BENCHMARK"] = "S000"

        app = AppTest.from_file(str(APP), default_timeout=900)
        started = time.perf_counter()
        app.run()
        first_overview = time.perf_counter() - started
        cold: dict[str, float] = {}
        rows = []
        peers = peer_reads(engine, settings)
        for page in PAGES:
            started = time.perf_counter()
            _render(app, page)
            cold[page] = time.perf_counter() - started
            warm = measure(lambda p=page: _render(app, p), runs=3)  # type: ignore[misc]
            peer = measure(peers[page])
            rows.append(Row(f"dashboard: {page} page (cached)", "renders/s", 1, warm, peer, PEER))
        for page, rolled, raw in (
            (
                "overview",
                lambda: overview.equity_with_benchmark(engine, DEPLOYMENT, "S000"),
                lambda: overview.equity_with_benchmark(engine, DEPLOYMENT, "S000", raw=True),
            ),
            (
                "risk",
                lambda: risk.risk_report(engine, DEPLOYMENT),
                lambda: risk.risk_report(engine, DEPLOYMENT, raw=True),
            ),
        ):
            rows.append(
                Row(
                    f"dashboard: {page} reads uncached, rollups",
                    "reads/s",
                    1,
                    measure(rolled, runs=3),
                    measure(raw, runs=3),
                    "the same reads on raw 1m bars",
                )
            )
        os.environ.pop("PRISM_DASHBOARD_BENCHMARK", None)
    notes.append(
        f"dashboard: {SYMBOLS} symbols x {len(bars) // SYMBOLS:,} XNYS minutes of 2023 = "
        f"{len(bars):,} bars, loaded with rollups in {loaded:.0f} s; first visit of each page "
        "(cold cache): "
        + ", ".join(f"{p} {s:.2f} s" for p, s in cold.items())
        + f" (the app's very first run, Overview with imports: {first_overview:.1f} s)"
    )
    return rows


if __name__ == "__main__":
    run_alone(run)
