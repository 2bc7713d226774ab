"""The runner's trade cycle on the real database: deployments from config.strategies, audit
decisions with their reasons, risk limits read each cycle, the circuit breaker, the kill switch,
stale data, and a moved alias picked up from a real MLflow registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from prism import ledger
from prism.cli.app import app
from prism.data.sources import ArchBarSource
from prism.live import cycle, deployments, risk
from prism.live.replay import replay_times
from prism.registry import promotion
from prism.strategies import SmaCrossover
from tests.integration.runner_support import (
    LENIENT,
    SYMBOLS,
    FixedSource,
    deploy,
    research_run,
    use_mlflow_store,
)


def run(engine, settings, name, times, source=None):
    source = source or FixedSource()
    return [cycle.run_cycle(engine, settings, name, as_of=t, source=source) for t in times]


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_deployments_are_added_edited_and_listed_from_the_cli(engine):
    cli = CliRunner()
    added = cli.invoke(
        app,
        [
            "runner",
            "deployments",
            "add",
            "alpha",
            "--symbols",
            "SPX,NDX",
            "--timeframe",
            "1d",
            "--capital",
            "1e6",
            "--alias",
            "challenger",
        ],
    )
    assert added.exit_code == 0, added.output
    edited = cli.invoke(
        app, ["runner", "deployments", "add", "alpha", "--symbols", "SPX", "--capital", "5e5"]
    )
    assert edited.exit_code == 0, edited.output
    listed = cli.invoke(app, ["runner", "deployments", "list"])
    assert "alpha" in listed.output and "500,000" in listed.output
    found = deployments.get_deployment(engine, "alpha")
    assert (found.symbols, found.capital, found.model_alias) == (("SPX",), 500_000.0, "challenger")
    bad = cli.invoke(
        app,
        [
            "runner",
            "deployments",
            "add",
            "beta",
            "--symbols",
            "SPX",
            "--timeframe",
            "2d",
            "--capital",
            "1e6",
        ],
    )
    assert bad.exit_code == 1
    assert "timeframe '2d' is not one of" in str(bad.exception)


def test_every_cycle_records_a_decision_per_symbol_and_a_risk_snapshot(stocked, settings):
    deploy(stocked, "dec")
    times = replay_times(stocked, list(SYMBOLS), 40)
    reports = run(stocked, settings, "dec", times)

    assert {r.outcome for r in reports} == {"traded"}
    fill_alerts = rows(
        stocked,
        "SELECT (metadata->>'fills')::int FROM audit.system_events "
        "WHERE event_type = 'fill' AND metadata->>'deployment' = 'dec'",
    )
    assert [n for (n,) in fill_alerts] == [r.fills for r in reports if r.fills]
    decisions = rows(
        stocked,
        "SELECT time, symbol, action, signals, risk_check, "
        "client_order_id FROM audit.decisions WHERE deployment = 'dec'",
    )
    assert len(decisions) == 2 * len(times)
    traded = [d for d in decisions if d.client_order_id]
    assert traded and all(d.action in ("buy", "sell") for d in traded)
    assert all(d.risk_check["outcome"] == "pass" for d in traded)
    assert all("target_weight" in d.signals and "equity" in d.signals for d in decisions)
    signals = rows(
        stocked,
        "SELECT time, symbol, strategy, value, target_weight FROM trading.signals "
        "WHERE deployment = 'dec'",
    )
    assert len(signals) == 2 * len(times)
    decided = {(d.time, d.symbol): float(d.signals["target_weight"]) for d in decisions}
    assert {(g.time, g.symbol): g.target_weight for g in signals} == pytest.approx(decided)
    assert {g.strategy for g in signals} == {"sma_crossover"}
    statuses = rows(stocked, "SELECT DISTINCT status FROM trading.orders WHERE deployment='dec'")
    assert {s for (s,) in statuses} <= {"sent", "filled", "cancelled"}
    snaps = rows(
        stocked,
        "SELECT time, gross_exposure, limit_utilization FROM "
        "trading.risk_snapshots WHERE deployment = 'dec' ORDER BY time",
    )
    assert len(snaps) == len(times)
    assert set(snaps[-1].limit_utilization) == {
        "max_position_pct",
        "max_gross_exposure",
        "max_net_exposure",
        "daily_loss_limit",
        "max_drawdown",
    }
    # the limits were seeded when the deployment was created
    assert len(rows(stocked, "SELECT key FROM config.risk_limits")) == len(risk.DEFAULTS)


def test_a_limit_changed_while_running_trims_the_next_orders(stocked, settings):
    deploy(stocked, "trim")
    times = replay_times(stocked, list(SYMBOLS), 60)
    run(stocked, settings, "trim", times[:1])
    with stocked.begin() as conn:
        risk.set_limit(conn, "max_position_pct", 0.2, "test")
    run(stocked, settings, "trim", times[1:])

    trimmed = rows(
        stocked,
        "SELECT d.time, d.symbol, d.signals, d.risk_check, o.quantity "
        "FROM audit.decisions d JOIN trading.orders o USING (client_order_id) "
        "WHERE d.deployment = 'trim' AND d.risk_check->>'outcome' = 'trim'",
    )
    assert trimmed
    for row in trimmed:
        # the new position is worth at most 20% of equity at the decision's close
        held = row.signals["held"]
        new = held + float(row.quantity) * (1 if row.risk_check["allowed"] > 0 else -1)
        assert abs(new) * row.signals["close"] <= 0.2 * row.signals["equity"] + 1e-6
        assert "max_position_pct" in row.risk_check["breaches"]
    alerts = rows(
        stocked,
        "SELECT severity::text, message, metadata FROM audit.system_events "
        "WHERE event_type = 'risk_breach' AND metadata->>'deployment' = 'trim'",
    )
    breached = rows(
        stocked,
        "SELECT DISTINCT time FROM audit.decisions WHERE deployment = 'trim' "
        "AND risk_check->>'outcome' IN ('trim', 'reject')",
    )
    assert len(alerts) == len(breached) >= len({row.time for row in trimmed})
    assert all(severity == "warning" and "trim at " in message for severity, message, _ in alerts)


def test_a_daily_loss_trips_the_circuit_breaker_until_resumed(stocked, settings):
    deploy(stocked, "brk")
    with stocked.begin() as conn:
        risk.set_limit(conn, "daily_loss_limit", 1e-9, "test")
    times = replay_times(stocked, list(SYMBOLS), 80)
    reports = run(stocked, settings, "brk", times)

    tripped = [r for r in reports if r.outcome == "breaker"]
    assert len(tripped) == 1
    after = reports[reports.index(tripped[0]) + 1 :]
    assert after and {r.outcome for r in after} == {"halted"}
    assert all(r.orders == 0 for r in after)
    state = deployments.get_deployment(stocked, "brk")
    assert state.halted and state.halted_by == "circuit breaker"
    assert "daily loss" in state.halt_reason
    events = rows(
        stocked,
        "SELECT severity::text FROM audit.system_events WHERE event_type = 'circuit_breaker'",
    )
    assert events == [("critical",)]
    skips = rows(
        stocked,
        "SELECT reasoning FROM audit.decisions WHERE deployment = 'brk' "
        "AND action = 'skip' AND time = :t",
        t=tripped[0].as_of,
    )
    assert len(skips) == 2 and "circuit breaker: daily loss" in skips[0].reasoning

    result = CliRunner().invoke(app, ["runner", "resume", "brk"])
    assert result.exit_code == 0, result.output
    assert not deployments.get_deployment(stocked, "brk").halted


def test_the_kill_switch_halts_and_flattens(stocked, settings):
    deploy(stocked, "kill")
    source = FixedSource()
    for as_of in replay_times(stocked, list(SYMBOLS), 60):
        cycle.run_cycle(stocked, settings, "kill", as_of=as_of, source=source)
        with stocked.connect() as conn:
            if ledger.holdings(conn, "kill"):
                break
    else:
        pytest.fail("the strategy never took a position")

    result = CliRunner().invoke(app, ["runner", "halt", "kill", "--flatten"])
    assert result.exit_code == 0, result.output
    # the closing orders are decided at the newest stored bar and fill at the next one
    newest = cycle.newest_bar(stocked, list(SYMBOLS), "1d")
    with stocked.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO market_data.ohlcv (symbol, timeframe, time, open, high, low, close, "
                "volume, source) SELECT symbol, timeframe, time + interval '1 day', open, high, "
                "low, close, volume, source FROM market_data.ohlcv WHERE time = :t"
            ),
            {"t": newest},
        )
    report = cycle.run_cycle(
        stocked, settings, "kill", as_of=newest + timedelta(days=1), source=source
    )
    assert report.outcome == "halted" and report.fills > 0
    with stocked.connect() as conn:
        assert ledger.holdings(conn, "kill") == {}
    state = deployments.get_deployment(stocked, "kill")
    assert state.halted and "kill switch" in state.halt_reason


def test_stale_data_means_no_trading(stocked, settings):
    deploy(stocked, "stale")
    newest = replay_times(stocked, list(SYMBOLS), 1)[-1]
    assert newest.date().isoformat() == "2018-12-31"
    now = newest + timedelta(days=10)  # six NYSE sessions (2-4 and 7-9 January) never arrived
    report = cycle.run_cycle(stocked, settings, "stale", now=now, source=FixedSource())
    assert (report.outcome, report.orders) == ("stale", 0)
    assert "stale data" in report.reason
    assert rows(
        stocked,
        "SELECT count(*) FROM audit.decisions WHERE deployment = 'stale' AND action = 'skip'",
    ) == [(2,)]
    assert rows(
        stocked, "SELECT count(*) FROM audit.system_events WHERE event_type = 'stale_data'"
    ) == [(1,)]


def test_a_small_order_under_the_minimum_notional_is_skipped(stocked, settings):
    deploy(stocked, "tiny", min_notional=1e9)
    times = replay_times(stocked, list(SYMBOLS), 40)
    run(stocked, settings, "tiny", times)
    assert rows(stocked, "SELECT count(*) FROM trading.orders WHERE deployment='tiny'") == [(0,)]
    skipped = rows(
        stocked,
        "SELECT reasoning FROM audit.decisions WHERE deployment = 'tiny' AND action = 'skip'",
    )
    assert skipped and "under the minimum" in skipped[0].reasoning


def test_a_moved_alias_is_picked_up_at_the_next_cycle(stocked, settings, tmp_path, monkeypatch):
    use_mlflow_store(monkeypatch, tmp_path)
    store = settings.model_copy(update={"mlruns_dir": tmp_path, "model_name": "runner-alias"})
    bars = ArchBarSource().fetch()
    first = research_run(store, SmaCrossover(fast=5, slow=20), bars)
    second = research_run(store, SmaCrossover(fast=10, slow=40), bars)
    promotion.promote(store, first, LENIENT, "alice", engine=stocked)
    deploy(stocked, "alias", model_name="runner-alias")
    times = replay_times(stocked, list(SYMBOLS), 3)

    one = cycle.run_cycle(stocked, store, "alias", as_of=times[0])
    promotion.promote(store, second, LENIENT, "bob", engine=stocked)
    two = cycle.run_cycle(stocked, store, "alias", as_of=times[1])

    assert (one.model_version, two.model_version) == ("1", "2")
    events = rows(
        stocked, "SELECT metadata FROM audit.system_events WHERE event_type = 'model_alias_changed'"
    )
    assert len(events) == 1
    assert (events[0].metadata["previous_version"], events[0].metadata["version"]) == ("1", "2")
    versions = rows(
        stocked,
        "SELECT DISTINCT model_version FROM audit.decisions "
        "WHERE deployment = 'alias' AND time = :t",
        t=times[1],
    )
    assert versions == [("2",)]
    assert deployments.get_deployment(stocked, "alias").last_model_version == "2"


def test_an_unknown_deployment_says_how_to_add_it(engine, settings):
    with pytest.raises(Exception, match="prism runner deployments add nope"):
        cycle.run_cycle(engine, settings, "nope", source=FixedSource())
