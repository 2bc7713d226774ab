"""A replay's orders and fills are the backtest's trades.

``prism.live.replay.replay_window`` runs the full trade cycle (:func:`prism.live.cycle.run_cycle`:
alias, pending recovery, paper fills, snapshot, risk snapshot and breaker, data gate, decide, risk
checks, send) bar by bar over stored history. The backtester
(:func:`prism.backtest.engine.run_backtest`) simulates the same strategy over the same bars in one
pass. They must agree trade by trade under these conditions:

- the same strategy and parameters (SMA crossover 5/20 on the bundled SPX and NDX daily bars);
- the same capital (the deployment's) and the same costs: commission (bps and per share) and
  slippage from the settings, which the deployment inherits; the default band, lot and leverage
  cap (:class:`prism.backtest.portfolio.AccountConfig`) on both sides;
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

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from prism.cli.app import app
from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.live.replay import replay_times, replay_window
from prism.registry import promotion
from prism.strategies import SmaCrossover
from tests.integration.runner_support import (
    CAPITAL,
    COSTS,
    LENIENT,
    SYMBOLS,
    FixedSource,
    deploy,
    loosen_limits,
    research_run,
    use_mlflow_store,
)

MODEL = "parity-model"
"""The deployment's model: the registry is bypassed on purpose (:class:`FixedSource`), so the
parity shown is that of the cycle, not of model loading (the CLI test covers that)."""


@pytest.fixture
def stocked(stocked: Engine) -> Engine:
    loosen_limits(stocked, "parity test")
    return stocked


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
    deploy(stocked, "parity")
    times = replay_times(stocked, list(SYMBOLS), 250)

    summary = replay_window(
        costly, "parity", times[0], times[-1], engine=stocked, source=FixedSource(strategy, MODEL)
    )

    assert summary.bars == len(times)
    assert summary.outcomes == ("traded",)
    backtest = _backtest(bundled_bars, strategy, costly, times)
    _assert_replay_equals_backtest(stocked, "parity", backtest, times)
    assert summary.fills == len(backtest.trades)
    assert summary.final_equity == pytest.approx(backtest.equity.iloc[-1], rel=1e-7)


def _promote(
    settings: Settings, strategy: SmaCrossover, bars: pd.DataFrame, engine: Engine
) -> None:
    """Log ``strategy`` as a research run's model and promote it to champion."""
    run_id = research_run(settings, strategy, bars)
    promoted = promotion.promote(settings, run_id, LENIENT, "parity test", engine=engine)
    assert promoted.promoted, promoted.failed()


def test_the_replay_command_trades_the_promoted_model_like_the_backtest(
    stocked, settings, bundled_bars, tmp_path, monkeypatch
):
    use_mlflow_store(monkeypatch, tmp_path)
    for key, value in COSTS.items():
        monkeypatch.setenv(f"PRISM_{key.upper()}", str(value))
    store = Settings(model_name="replay-cli")
    strategy = SmaCrossover(fast=5, slow=20)
    _promote(store, strategy, bundled_bars, stocked)
    deploy(stocked, "cli", model_name="replay-cli")
    times = replay_times(stocked, list(SYMBOLS), 80)

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
    deploy(stocked, "empty")

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
