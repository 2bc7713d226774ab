"""A replay's orders and fills are the backtest's trades.

``prism.replay.replay_window`` runs the full trade cycle (:func:`prism.cycle.run_cycle`: alias,
pending recovery, paper fills, snapshot, risk snapshot and breaker, data gate, decide, risk
checks, send) bar by bar over stored history. The backtester (:func:`prism.backtest.run_backtest`)
simulates the same strategy over the same bars in one pass. They must agree trade by trade under
these conditions:

- the same strategy and parameters (SMA crossover 5/20 on the bundled SPX and NDX daily bars);
- the same capital (the deployment's) and the same costs: commission (bps and per share) and
  slippage from the settings, which the deployment inherits; the default band, lot and leverage
  cap (:class:`prism.portfolio.AccountConfig`) on both sides;
- the backtest sees the same history the runner reads for its warm-up and trades from the
  replay's first bar; it is given no bar after the replay's last, so an order decided at the
  last bar is open in the replay and absent from the backtest;
- no binding risk limit: the limits are raised far above anything the strategy reaches (the test
  checks that every order's risk check passed), no minimum notional.

Both sides fill at the next bar's open worse by slippage, sells before buys, a buy cut to the
cash left; the replay's paper broker keeps quantities and prices as decimals, hence the
tolerances.
"""

from __future__ import annotations

import re
from datetime import datetime

import mlflow
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism import deployments, live, registry, risk, tracking
from prism.backtest import BacktestConfig, BacktestResult, run_backtest
from prism.cli import app
from prism.config import GateSettings, Settings
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.errors import DataUnavailable
from prism.replay import replay_window
from prism.strategies import SmaCrossover

SYMBOLS = ("SPX", "NDX")
CAPITAL = 1_000_000.0
COSTS = {"commission_bps": 5.0, "slippage_bps": 3.0, "commission_per_share": 0.01}
LOOSE_LIMITS = {
    "max_position_pct": 10.0,
    "max_gross_exposure": 10.0,
    "max_net_exposure": 10.0,
    "max_order_notional": 1e12,
    "daily_loss_limit": 1.0,
    "max_drawdown": 1.0,
}
LENIENT = GateSettings(min_sharpe=0.0, max_drawdown=0.9, min_trades=1, min_deflated_sharpe=0.0)


class FixedSource:
    """One SMA crossover as the deployment's model: the registry is bypassed on purpose, so the
    parity shown is that of the cycle, not of model loading (the CLI test covers that)."""

    def __init__(self, strategy: SmaCrossover) -> None:
        self.strategy = strategy

    def current(self, alias: str) -> tuple[str, str]:
        return "parity-model", "1"

    def load(self, alias: str, version: str) -> live.LiveStrategy:
        s = self.strategy
        return live.LiveStrategy(s.name, "parity-model", version, s.warmup, s.target_weights)


@pytest.fixture
def stocked(engine: Engine) -> Engine:
    ingest(engine, ArchBarSource())
    with engine.begin() as conn:
        for key, value in LOOSE_LIMITS.items():
            risk.set_limit(conn, key, value, "parity test")
    return engine


def _deploy(engine: Engine, name: str, model_name: str | None = None) -> None:
    deployments.upsert_deployment(
        engine, deployments.Deployment(name, SYMBOLS, "1d", CAPITAL, model_name=model_name)
    )


def _backtest(
    bars: pd.DataFrame, strategy: SmaCrossover, settings: Settings, times: list[datetime]
) -> BacktestResult:
    """Backtest on the bars up to the replay's last, trading from its first."""
    start, end = pd.Timestamp(times[0]), pd.Timestamp(times[-1])
    window = bars[bars["time"] <= end]
    config = BacktestConfig(
        capital=CAPITAL,
        commission_bps=settings.commission_bps,
        commission_per_share=settings.commission_per_share,
        slippage_bps=settings.slippage_bps,
    )
    return run_backtest(window, strategy, config, start=start)


def _query(engine: Engine, sql: str, deployment: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn, params={"d": deployment})


def _assert_replay_equals_backtest(
    engine: Engine, deployment: str, backtest: BacktestResult, times: list[datetime]
) -> None:
    fills = _query(
        engine,
        "SELECT o.decided_at, f.time, f.symbol, f.side, f.quantity, f.price, f.commission "
        "FROM trading.fills f JOIN trading.orders o ON o.id = f.order_id "
        "WHERE f.deployment = :d ORDER BY f.time, f.side, f.symbol",
        deployment,
    )
    trades = backtest.trades.astype({"symbol": str, "side": str})
    trades = trades.sort_values(["time", "side", "symbol"]).reset_index(drop=True)
    assert len(trades) > 10, "the window must trade for the comparison to mean anything"
    assert len(fills) == len(trades)
    for fill, trade in zip(fills.itertuples(), trades.itertuples(), strict=True):
        assert (fill.symbol, fill.side) == (trade.symbol, trade.side)
        assert pd.Timestamp(fill.decided_at) == pd.Timestamp(trade.decided_at)
        assert pd.Timestamp(fill.time) == pd.Timestamp(trade.time)
        assert float(fill.quantity) == pytest.approx(abs(trade.quantity), abs=1e-4)
        assert float(fill.price) == pytest.approx(trade.price, rel=1e-8)
        assert float(fill.commission) == pytest.approx(trade.commission, rel=1e-6, abs=0.01)

    orders = _query(
        engine,
        "SELECT decided_at, symbol, side, status FROM trading.orders WHERE deployment = :d",
        deployment,
    )
    last = pd.Timestamp(times[-1])
    decided = orders[orders["decided_at"] < last]
    assert sorted(zip(decided["decided_at"], decided["symbol"], decided["side"], strict=True)) == (
        sorted(
            zip(
                trades["decided_at"].map(pd.Timestamp),
                trades["symbol"],
                trades["side"],
                strict=True,
            )
        )
    )
    assert set(orders.loc[orders["decided_at"] == last, "status"]) <= {"sent"}

    equity = _query(
        engine,
        "SELECT time, equity FROM trading.portfolio_snapshots WHERE deployment = :d ORDER BY time",
        deployment,
    )
    assert equity["equity"].astype(float).tolist() == pytest.approx(
        backtest.equity.tolist(), rel=1e-7
    )
    checks = _query(
        engine,
        "SELECT DISTINCT risk_check->>'outcome' AS outcome FROM audit.decisions "
        "WHERE deployment = :d AND client_order_id IS NOT NULL",
        deployment,
    )
    assert checks["outcome"].tolist() == ["pass"]


def test_a_replay_trades_exactly_what_the_backtest_trades(stocked, settings, bundled_bars):
    costly = settings.model_copy(update=COSTS)
    strategy = SmaCrossover(fast=5, slow=20)
    _deploy(stocked, "parity")
    times = live.replay_times(stocked, list(SYMBOLS), 250)

    summary = replay_window(
        costly, "parity", times[0], times[-1], engine=stocked, source=FixedSource(strategy)
    )

    assert summary["bars"] == len(times)
    assert summary["outcomes"] == ["traded"]
    backtest = _backtest(bundled_bars, strategy, costly, times)
    _assert_replay_equals_backtest(stocked, "parity", backtest, times)
    assert summary["fills"] == len(backtest.trades)
    assert summary["final_equity"] == pytest.approx(backtest.equity.iloc[-1], rel=1e-7)


def _promote(
    settings: Settings, strategy: SmaCrossover, bars: pd.DataFrame, engine: Engine
) -> None:
    """Log ``strategy`` as a research run's model and promote it to champion."""
    with tracking.research_run(settings):
        tracking.log_data(bars)
        tracking.log_metrics(
            {
                "sharpe": 1.0,
                "max_drawdown": 0.2,
                "n_trades": 40,
                "oos_sharpe": 1.1,
                "oos_max_drawdown": 0.12,
                "oos_n_trades": 12,
                "oos_skew": -0.2,
                "oos_kurtosis": 4.0,
                "oos_n_periods": 500,
                "trials": 1,
            }
        )
        mlflow.set_tags({"prism.lookahead_check": "passed", "prism.parity_check": "passed"})
        run_id = str(mlflow.active_run().info.run_id)  # type: ignore[union-attr]
        tracking.log_strategy_model(strategy, bars)
    promotion = registry.promote(settings, run_id, LENIENT, "parity test", engine=engine)
    assert promotion.promoted, promotion.failed()


def test_the_replay_command_trades_the_promoted_model_like_the_backtest(
    stocked, settings, bundled_bars, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path))
    for key, value in COSTS.items():
        monkeypatch.setenv(f"PRISM_{key.upper()}", str(value))
    store = Settings(model_name="replay-cli")
    strategy = SmaCrossover(fast=5, slow=20)
    _promote(store, strategy, bundled_bars, stocked)
    _deploy(stocked, "cli", model_name="replay-cli")
    times = live.replay_times(stocked, list(SYMBOLS), 80)

    result = CliRunner().invoke(
        app,
        [
            "runner",
            "replay",
            "--deployment",
            "cli",
            "--start",
            times[0].strftime("%Y-%m-%d"),
            "--end",
            times[-1].strftime("%Y-%m-%d"),
        ],
    )

    assert result.exit_code == 0, result.output
    backtest = _backtest(bundled_bars, strategy, store, times)
    assert f"replayed {len(times)} bars of cli" in result.output
    assert f"{len(backtest.trades)} fills" in result.output
    printed = re.search(r"final equity ([\d,.]+)", result.output)
    assert printed is not None, result.output
    assert float(printed.group(1).replace(",", "")) == pytest.approx(
        backtest.equity.iloc[-1], abs=0.01
    )
    _assert_replay_equals_backtest(stocked, "cli", backtest, times)


def test_a_replay_window_without_bars_is_refused_with_the_reason(stocked, settings):
    _deploy(stocked, "empty")

    result = CliRunner().invoke(
        app,
        [
            "runner",
            "replay",
            "--deployment",
            "empty",
            "--start",
            "1970-01-01",
            "--end",
            "1970-02-01",
        ],
    )

    assert result.exit_code != 0
    assert isinstance(result.exception, DataUnavailable)
    assert "no 1d bars of SPX, NDX between 1970-01-01" in str(result.exception)
    with stocked.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trading.orders")).scalar() == 0
