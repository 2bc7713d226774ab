"""The monitoring app on a workspace filled by a short replay: an AppTest per page asserting on
the values it shows (checked against SQL and the MLflow registry of the same workspace), the
password login, and a headless Chromium screenshot of every page from one Streamlit server.

The workspace is built once per module, in process: the bundled SPX and NDX bars, 60 daily
cycles of the live runner's functions (decide, fill, snapshot) trading an SMA crossover on a
paper account in July-September 2018 (a rising market, so the book holds positions at the end),
a champion and a challenger registered in a real MLflow store, risk limits and system events.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import matplotlib.image
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, text

from prism import ledger
from prism.brokers.paper import PaperBroker
from prism.core.events import record_event
from prism.core.settings import Settings
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.db import embedded
from prism.db.engine import open_database
from prism.live import steps
from prism.live.replay import replay_times
from prism.monitoring import fmt
from prism.research.tracking import configure
from prism.strategies import SmaCrossover

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboards" / "app.py"
PAGES = {
    "overview": "Overview",
    "positions": "Positions",
    "orders": "Orders and fills",
    "risk": "Risk",
    "models": "Models",
    "data_health": "Data health",
    "research": "Research",
}
DEPLOYMENT = "demo"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


class Flat(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A stand-in model: the registry needs a model to version, the pages only its metadata."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def _register(settings: Settings, name: str, metrics: dict[str, float], alias: str) -> str:
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"prism.notebook": "notebooks/02_backtest_strategy.ipynb"})
        info = mlflow.pyfunc.log_model(name="model", python_model=Flat(), pip_requirements=[])
    version = mlflow.register_model(info.model_uri, settings.model_name).version
    MlflowClient().set_registered_model_alias(settings.model_name, alias, str(version))
    return run.info.run_id


@pytest.fixture(scope="module")
def workspace_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Build the workspace (see the module docstring); yield the environment that points at it."""
    root = tmp_path_factory.mktemp("monitoring")
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so an earlier test's store may linger
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    settings = Settings(home=root / "home", mlruns_dir=root / "mlruns", database_url=None)
    engine = open_database(settings)
    ingest(engine, ArchBarSource())
    configure(settings)
    _register(
        settings, "challenger", {"sharpe": 0.4, "max_drawdown": 0.2, "n_trades": 9}, "challenger"
    )
    _register(
        settings, "champion", {"sharpe": 0.9, "max_drawdown": 0.12, "n_trades": 14}, "champion"
    )
    strategy = SmaCrossover(fast=5, slow=20)
    config = steps.LiveConfig(
        deployment=DEPLOYMENT,
        symbols=("SPX", "NDX"),
        capital=1e6,
        commission_bps=1.0,
        slippage_bps=2.0,
    )
    broker = PaperBroker(engine, config)
    ledger.ensure_account(engine, DEPLOYMENT, Decimal("1000000"))
    model = steps.LiveStrategy(
        strategy.name, settings.model_name, "2", strategy.warmup, strategy.target_weights
    )
    for as_of in replay_times(engine, ["SPX", "NDX"], 120)[:60]:
        steps.fill_open_orders(engine, broker, DEPLOYMENT, as_of)
        steps.decide(engine, broker, model, config, as_of)
        steps.snapshot(engine, config, as_of)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.risk_limits (key, value, description, updated_by) VALUES "
                "('max_gross_exposure', 1.5, 'gross exposure / equity', 'test'), "
                "('max_position_pct', 0.8, 'largest position / equity', 'test')"
            )
        )
    record_event(engine, "stale_feed", "warning", "data", "NDX 1d: no new bar")
    engine.dispose()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "MLFLOW_TRACKING_URI"))
    }
    env.update(PRISM_HOME=str(root / "home"), PRISM_MLRUNS_DIR=str(root / "mlruns"))
    yield env
    embedded.stop(root / "home" / "postgres")


@pytest.fixture
def on_workspace(workspace_env, monkeypatch) -> Iterator[Engine]:
    """Point this process at the workspace; yield an owner engine for checking SQL."""
    from prism.db.engine import connect

    for key in [k for k in os.environ if k.startswith("PRISM_")] + ["MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in workspace_env.items():
        if key.startswith("PRISM_"):
            monkeypatch.setenv(key, value)
    engine = connect(Settings())
    yield engine
    engine.dispose()


def _settings() -> Settings:
    return Settings()


def _page(name: str):  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=120).run()
    if name != "overview":
        app.switch_page(f"pages/{name}_page.py").run()
    assert not app.exception, [e.message for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert [t.value for t in app.title] == [PAGES[name]]
    return app


def _metrics(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.label: m.value for m in app.metric}


def _one(engine: Engine, sql: str) -> float:
    with engine.connect() as conn:
        return float(conn.execute(text(sql)).scalar() or 0)


def test_the_overview_shows_equity_pnl_and_the_armed_circuit_breaker(on_workspace):
    equity = _one(
        on_workspace, "SELECT equity FROM trading.portfolio_snapshots ORDER BY time DESC LIMIT 1"
    )
    previous = _one(
        on_workspace,
        "SELECT equity FROM trading.portfolio_snapshots ORDER BY time DESC OFFSET 1 LIMIT 1",
    )
    capital = _one(on_workspace, "SELECT initial_capital FROM trading.accounts")

    app = _page("overview")

    metrics = _metrics(app)
    assert metrics["equity"] == fmt.money(equity)
    assert metrics["P&L total"] == fmt.signed_money(equity - capital)
    assert metrics["P&L today"] == fmt.signed_money(equity - previous)
    assert len(app.get("plotly_chart")) == 1
    states = app.dataframe[0].value
    assert states["deployment"].tolist() == [DEPLOYMENT]
    assert states["breaker"].tolist() == ["armed"]


def test_the_positions_page_values_the_book_at_the_newest_closes(on_workspace):
    market_value = _one(
        on_workspace,
        "SELECT coalesce(sum(p.quantity * b.close), 0) FROM trading.positions p "
        "CROSS JOIN LATERAL (SELECT close FROM market_data.ohlcv WHERE symbol = p.symbol "
        "ORDER BY time DESC LIMIT 1) b",
    )
    realized = _one(on_workspace, "SELECT sum(realized_pnl) FROM trading.positions")

    app = _page("positions")

    metrics = _metrics(app)
    assert metrics["market value"] == fmt.money(market_value)
    assert metrics["realized P&L"] == fmt.signed_money(realized)
    totals = app.dataframe[1].value
    assert totals["deployment"].tolist() == [DEPLOYMENT, "total"]
    with on_workspace.connect() as conn:
        newest = pd.read_sql_query(
            text(
                "SELECT symbol, target_weight FROM trading.signals WHERE time = "
                "(SELECT max(time) FROM trading.signals) ORDER BY symbol"
            ),
            conn,
        )
    targets = app.dataframe[2].value
    assert targets["deployment"].unique().tolist() == [DEPLOYMENT]
    assert len(newest) == 2 and targets["symbol"].tolist() == newest["symbol"].tolist()
    assert targets["target_weight"].tolist() == newest["target_weight"].tolist()


def test_the_orders_page_counts_every_order_and_adds_its_commission(on_workspace):
    count = _one(on_workspace, "SELECT count(*) FROM trading.orders")
    commission = _one(on_workspace, "SELECT sum(commission) FROM trading.orders")
    fills = _one(on_workspace, "SELECT count(*) FROM trading.fills")

    app = _page("orders")

    metrics = _metrics(app)
    assert metrics["orders"] == fmt.number(count)
    assert metrics["commission"] == fmt.money(commission, decimals=2)
    shown = app.dataframe[0].value
    assert len(shown) == count
    assert shown["decision_price"].notna().all()
    assert len(app.dataframe[1].value) == fills


def test_the_orders_page_filters_by_symbol(on_workspace):
    count = _one(on_workspace, "SELECT count(*) FROM trading.orders WHERE symbol = 'NDX'")
    app = _page("orders")

    app.sidebar.multiselect[1].select("NDX").run()

    assert _metrics(app)["orders"] == fmt.number(count)
    assert set(app.dataframe[0].value["symbol"]) == {"NDX"}


def test_the_risk_page_shows_var_of_the_book_and_the_utilization_of_each_limit(on_workspace):
    gross = _one(
        on_workspace,
        "SELECT sum(abs(p.quantity * b.close)) / (a.cash + sum(p.quantity * b.close)) "
        "FROM trading.positions p JOIN trading.accounts a USING (deployment) "
        "CROSS JOIN LATERAL (SELECT close FROM market_data.ohlcv WHERE symbol = p.symbol "
        "ORDER BY time DESC LIMIT 1) b GROUP BY a.cash",
    )

    app = _page("risk")

    metrics = _metrics(app)
    assert set(metrics) == {
        "historical VaR 95%",
        "historical VaR 99%",
        "parametric VaR 95%",
        "parametric VaR 99%",
    }
    assert all(value.startswith("$") for value in metrics.values())
    assert len(app.get("plotly_chart")) == 2
    limits = app.dataframe[-1].value.set_index("key")
    assert limits.loc["max_gross_exposure", "utilization"] == pytest.approx(gross / 1.5)
    assert limits.loc["max_gross_exposure", "source"] == "computed here"


def test_the_models_page_shows_champion_challenger_and_an_orders_lineage(on_workspace):
    settings = _settings()
    client = MlflowClient(settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    challenger = client.get_model_version_by_alias(settings.model_name, "challenger")

    app = _page("models")

    table = app.dataframe[0].value.set_index("alias")
    assert table.loc["champion", "deployment"] == DEPLOYMENT
    assert table.loc["champion", "version"] == str(champion.version) == "2"
    assert table.loc["champion", "run_id"] == champion.run_id
    assert table.loc["champion", "sharpe"] == pytest.approx(0.9)
    assert table.loc["challenger", "version"] == str(challenger.version) == "1"
    assert table.loc["challenger", "sharpe"] == pytest.approx(0.4)
    chosen = app.selectbox[0].value
    lineage = app.dataframe[1].value
    rows = set(lineage.itertuples(index=False, name=None))
    assert ("order", "client_order_id", chosen) in rows
    assert ("MLflow run", "run_id", champion.run_id) in rows or champion.run_id in str(rows)


def test_the_data_health_page_shows_each_series_and_its_bar_count(on_workspace):
    series = _one(on_workspace, "SELECT count(DISTINCT (symbol, timeframe)) FROM market_data.ohlcv")
    bars = _one(on_workspace, "SELECT count(*) FROM market_data.ohlcv")

    app = _page("data_health")

    assert _metrics(app)["series"] == fmt.number(series)
    table = app.dataframe[0].value
    assert int(table["bars"].sum()) == bars
    assert set(table["symbol"]) == {"SPX", "NDX"}


def test_the_research_page_ranks_runs_by_the_chosen_metric(on_workspace):
    client = MlflowClient(_settings().mlflow_tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = {r.info.run_name: r.info.run_id for r in client.search_runs(experiments)}

    app = _page("research")

    board = app.dataframe[0].value
    assert app.sidebar.selectbox[0].value == "sharpe"
    assert board["run_id"].tolist()[:2] == [runs["champion"], runs["challenger"]]
    assert board["metric"].tolist()[:2] == pytest.approx([0.9, 0.4])

    app.sidebar.selectbox[0].select("max_drawdown").run()

    board = app.dataframe[0].value
    assert board["run_name"].tolist()[:2] == ["champion", "challenger"]
    assert board["metric"].tolist()[:2] == pytest.approx([0.12, 0.2])


def test_with_a_password_set_nothing_shows_until_the_visitor_types_it(on_workspace, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PRISM_DASHBOARD_AUTH", "password")
    monkeypatch.setenv("PRISM_DASHBOARD_PASSWORD", "open sesame")
    app = AppTest.from_file(str(APP), default_timeout=120).run()

    assert not app.metric and not app.dataframe
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert app.error[0].value.startswith("Wrong password")
    assert not app.metric

    app.text_input[0].input("open sesame")
    app.button[0].click().run()
    assert not app.error
    assert [t.value for t in app.title] == ["Overview"]
    assert "equity" in _metrics(app)


OIDC_SECRETS = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a long random string",
    "client_id": "prism",
    "client_secret": "s3cret",
    "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
}


def _oidc_app(monkeypatch, user: dict[str, object], **auth: str):  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PRISM_DASHBOARD_AUTH", "oidc")
    app = AppTest.from_file(str(APP), default_timeout=120)
    if auth:
        app.secrets["auth"] = auth
    app.user = user
    return app.run()


def test_with_oidc_a_signed_out_visitor_sees_only_the_login_button(on_workspace, monkeypatch):
    app = _oidc_app(monkeypatch, {"is_logged_in": False}, **OIDC_SECRETS)

    assert not app.exception and not app.error
    assert [b.label for b in app.button] == ["Log in"]
    assert not app.metric and not app.dataframe


def test_with_oidc_a_signed_in_visitor_sees_the_pages_and_who_they_are(on_workspace, monkeypatch):
    user = {"is_logged_in": True, "email": "ops@example.com", "name": "Ops"}
    app = _oidc_app(monkeypatch, user, **OIDC_SECRETS)

    assert not app.exception and not app.error
    assert "signed in as ops@example.com" in [c.value for c in app.sidebar.caption]
    assert [t.value for t in app.title] == ["Overview"]
    assert "equity" in _metrics(app)


def test_with_oidc_but_no_provider_in_the_secrets_the_app_names_what_is_missing(
    on_workspace, monkeypatch
):
    partial = {k: v for k, v in OIDC_SECRETS.items() if k not in ("client_secret", "cookie_secret")}
    app = _oidc_app(monkeypatch, {"is_logged_in": False}, **partial)

    assert [e.value for e in app.error] == [
        "PRISM_DASHBOARD_AUTH=oidc needs auth.cookie_secret, auth.client_secret in "
        ".streamlit/secrets.toml (see Streamlit's st.login); or set PRISM_DASHBOARD_AUTH=password"
    ]
    assert not app.button and not app.metric


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds}s")


CHROMIUM = shutil.which("chromium")
RENDERED = {
    "overview": ("Last alerts", 2, 1),
    "positions": ("Target weights of the newest cycle", 3, 1),
    "orders": ("Fills", 2, 1),
    "risk": ("Risk limits", 3, 2),
    "models": ("Lineage of an order", 2, 0),
    "data_health": ("Nothing quarantined.", 1, 0),
    "research": ("The newest runs that logged", 1, 1),
}
"""Per page: text near its end, and how many tables and plots it shows once rendered."""
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_every_page_renders_in_headless_chromium_without_an_error_box(workspace_env, tmp_path):
    from playwright.sync_api import sync_playwright

    env = workspace_env
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env={**env, "PRISM_DASHBOARD_REFRESH": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shown: dict[str, str] = {}
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            for name, title in PAGES.items():
                path = "" if name == "overview" else name
                page.goto(f"http://127.0.0.1:{port}/{path}")
                page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
                last_text, tables, plots = RENDERED[name]
                page.get_by_text(last_text).first.wait_for(timeout=120_000)
                frames = page.locator('[data-testid="stDataFrame"]')
                frames.nth(tables - 1).wait_for(timeout=60_000)
                if plots:
                    page.locator(".js-plotly-plot").nth(plots - 1).wait_for(timeout=60_000)
                page.wait_for_timeout(500)
                errors = page.locator(
                    '[data-testid="stException"], [data-testid="stAlertContentError"]'
                )
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                shown[name] = page.inner_text("body")
                page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "P&L total" in shown["overview"] and "reading as prism_reader" in shown["overview"]
    assert "historical VaR 95%" in shown["risk"]
    assert "quarantined rows" in shown["data_health"]
    for name in PAGES:
        pixels = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert pixels.shape[1] == 1400
        assert len({tuple(p) for p in pixels[::10, ::10].reshape(-1, pixels.shape[2])}) > 20
    keep = os.environ.get("PRISM_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(tmp_path / "overview.png", keep)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_the_demos_dashboard_stops_with_its_command_when_killed(workspace_env, stop):
    port = _free_port()
    code = (
        "from prism.cli.demo_run import serve_dashboard\n"
        "from prism.core.settings import load_settings\n"
        f"raise SystemExit(serve_dashboard(load_settings(), port={port}))\n"
    )
    command = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=workspace_env)
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health")
        command.send_signal(stop)
        exit_code = command.wait(timeout=30)
    finally:
        command.kill()
    with pytest.raises(TimeoutError):
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health", seconds=3)
    assert exit_code == 0
