from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import text

from prism import ledger
from prism.backtest.engine import BacktestConfig, run_backtest
from prism.brokers.paper import PaperBroker
from prism.live import steps
from prism.live.replay import replay_times
from prism.strategies import SmaCrossover
from tests.integration.runner_support import COSTS, SYMBOLS


def _live_strategy(strategy: SmaCrossover) -> steps.LiveStrategy:
    return steps.LiveStrategy(
        strategy.name, "test-model", "1", strategy.warmup, strategy.target_weights
    )


def _replay(engine, strategy, times: list[datetime], config: steps.LiveConfig) -> None:
    broker = PaperBroker(engine, config)
    ledger.ensure_account(engine, config.deployment, Decimal("1000000"))
    for as_of in times:
        steps.fill_open_orders(engine, broker, config.deployment, as_of)
        steps.decide(engine, broker, _live_strategy(strategy), config, as_of)
        steps.snapshot(engine, config, as_of)


def _fills(engine, deployment: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            text(
                "SELECT o.decided_at, f.time, f.symbol, f.side, f.quantity, f.price, f.commission "
                "FROM trading.fills f JOIN trading.orders o ON o.id = f.order_id "
                "WHERE f.deployment = :d ORDER BY f.time, f.symbol"
            ),
            conn,
            params={"d": deployment},
        )


def test_replaying_the_runner_reproduces_the_backtests_fills_and_equity(stocked, bundled_bars):
    strategy = SmaCrossover(fast=5, slow=20)
    config = steps.LiveConfig(deployment="parity", symbols=SYMBOLS, capital=1_000_000.0, **COSTS)
    times = replay_times(stocked, list(SYMBOLS), 250)
    start = pd.Timestamp(times[0])
    history = bundled_bars[bundled_bars["time"] >= start - pd.Timedelta(days=60)]

    backtest = run_backtest(
        history, strategy, BacktestConfig(capital=1_000_000.0, **COSTS), start=start
    )
    _replay(stocked, strategy, times, config)

    fills = _fills(stocked, "parity")
    expected = backtest.trades.sort_values(["time", "symbol"]).reset_index(drop=True)
    assert len(fills) == len(expected) > 10
    assert fills["symbol"].tolist() == expected["symbol"].tolist()
    assert fills["time"].tolist() == expected["time"].tolist()
    np.testing.assert_allclose(
        fills["quantity"].astype(float), expected["quantity"].abs(), atol=1e-4
    )
    np.testing.assert_allclose(fills["price"].astype(float), expected["price"], rtol=1e-8)
    with stocked.connect() as conn:
        equity = (
            pd.read_sql_query(
                text(
                    "SELECT time, equity FROM trading.portfolio_snapshots "
                    "WHERE deployment = 'parity' "
                    "ORDER BY time"
                ),
                conn,
            )
            .set_index("time")["equity"]
            .astype(float)
        )
    np.testing.assert_allclose(equity.to_numpy(), backtest.equity.to_numpy(), rtol=1e-7)


def test_repeating_cycles_never_duplicates_an_order_a_fill_or_a_snapshot(stocked):
    strategy = SmaCrossover(fast=5, slow=20)
    config = steps.LiveConfig(deployment="repeat", symbols=SYMBOLS, **COSTS)
    times = replay_times(stocked, list(SYMBOLS), 80)

    _replay(stocked, strategy, times, config)
    counts = _counts(stocked)
    _replay(stocked, strategy, times[-10:], config)
    _replay(stocked, strategy, times[-1:], config)

    assert _counts(stocked) == counts
    assert counts["orders"] > 0 and counts["fills"] > 0


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {schema}.{table}")).scalar()
            for schema, table in [
                ("trading", "orders"),
                ("trading", "fills"),
                ("trading", "portfolio_snapshots"),
                ("audit", "decisions"),
            ]
        }


def test_cash_plus_positions_at_the_close_equals_the_snapshot_equity(stocked):
    config = steps.LiveConfig(deployment="books", symbols=SYMBOLS, **COSTS)
    times = replay_times(stocked, list(SYMBOLS), 120)
    _replay(stocked, SmaCrossover(fast=5, slow=20), times, config)

    with stocked.connect() as conn:
        cash = ledger.cash(conn, "books")
        held = ledger.holdings(conn, "books")
        closes = dict(
            conn.execute(
                text(
                    "SELECT symbol, close FROM market_data.ohlcv "
                    "WHERE time = :t AND timeframe = '1d'"
                ),
                {"t": times[-1]},
            ).all()
        )
        snapshot = conn.execute(
            text(
                "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = 'books' "
                "ORDER BY time DESC LIMIT 1"
            )
        ).scalar()
        spent = conn.execute(
            text(
                "SELECT sum(CASE WHEN side = 'buy' THEN 1 ELSE -1 END * quantity * price "
                "+ commission) "
                "FROM trading.fills WHERE deployment = 'books'"
            )
        ).scalar()

    marked = cash + sum(q * ledger.to_decimal(closes[s]) for s, q in held.items())
    assert abs(marked - snapshot) < Decimal("0.01")
    assert abs(Decimal("1000000") - spent - cash) < Decimal("0.01")


def test_every_order_traces_to_an_audit_decision_with_the_model_version(stocked):
    config = steps.LiveConfig(deployment="trace", symbols=SYMBOLS, **COSTS)
    _replay(
        stocked,
        SmaCrossover(fast=5, slow=20),
        replay_times(stocked, list(SYMBOLS), 60),
        config,
    )

    with stocked.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM trading.orders o LEFT JOIN audit.decisions d "
                "ON d.client_order_id = o.client_order_id WHERE o.deployment = 'trace' "
                "AND (d.client_order_id IS NULL "
                "OR d.model_version IS DISTINCT FROM o.model_version)"
            )
        ).scalar()
        orders = conn.execute(
            text("SELECT count(*) FROM trading.orders WHERE deployment = 'trace'")
        ).scalar()
    assert orders > 0
    assert orphans == 0


def test_orders_the_broker_has_not_filled_yet_are_not_ordered_again(stocked):
    """A broker slower than the bar: the first cycle's buys are still working when the next
    cycle decides, so that cycle holds instead of buying the same target a second time."""
    config = steps.LiveConfig(deployment="slow", symbols=SYMBOLS, **COSTS)
    broker = PaperBroker(stocked, config)
    ledger.ensure_account(stocked, config.deployment, Decimal("1000000"))
    forty = steps.LiveStrategy(
        "fixed", "test-model", "1", 1, lambda bars: bars[["time", "symbol"]].assign(weight=0.4)
    )
    first, second, third = replay_times(stocked, list(SYMBOLS), 3)

    sent = steps.decide(stocked, broker, forty, config, first)
    assert sorted(o.symbol for o in sent) == sorted(SYMBOLS)
    assert steps.decide(stocked, broker, forty, config, second) == []
    steps.fill_open_orders(stocked, broker, config.deployment, third)

    with stocked.connect() as conn:
        held = ledger.holdings(conn, config.deployment)
        reasons = conn.execute(
            text("SELECT reasoning FROM audit.decisions WHERE deployment = 'slow' AND time = :t"),
            {"t": second},
        ).scalars()
        assert all("once working orders for" in r for r in reasons)
    assert held == {o.symbol: o.quantity for o in sent}
