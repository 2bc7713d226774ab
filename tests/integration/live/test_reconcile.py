"""Reconciliation on the real database: the ledger's positions against the paper broker's own
books (``trading.paper_orders`` / ``paper_fills``), through the library and the CLI."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from prism.brokers.paper import PaperBroker
from prism.cli.app import app
from prism.live import cycle, deployments
from prism.live.reconcile import reconcile
from prism.live.replay import replay_times
from tests.integration.runner_support import SYMBOLS, FortyPercentSource, deploy


@pytest.fixture
def traded(stocked, settings):
    """A deployment that has traded 5 daily bars on the paper broker, so both the ledger and
    the broker hold positions."""
    deploy(stocked, "rec")
    source = FortyPercentSource()
    for t in replay_times(stocked, list(SYMBOLS), 5):
        cycle.run_cycle(stocked, settings, "rec", as_of=t, source=source)
    return stocked


def ledger_positions(engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT symbol, quantity FROM trading.positions WHERE deployment = 'rec'")
        ).all()
    return {symbol: quantity for symbol, quantity in rows if quantity != 0}


def scale_ledger(engine, symbol: str, factor: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE trading.positions SET quantity = quantity * CAST(:f AS numeric) "
                "WHERE deployment = 'rec' AND symbol = :s"
            ),
            {"f": factor, "s": symbol},
        )


def mismatch_events(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT severity, metadata FROM audit.system_events "
                "WHERE event_type = 'reconcile_mismatch'"
            )
        ).all()


def test_equal_positions_reconcile_without_an_event(traded, settings):
    broker = PaperBroker(traded, deployments.get_deployment(traded, "rec").live_config(settings))
    held = ledger_positions(traded)

    result = reconcile(traded, settings, "rec")

    assert held and held == broker.positions()
    assert (result.mismatches, result.halted, result.symbols) == ([], False, len(held))
    assert result.broker_positions == held
    # the paper broker's cash, from its own fills, is the ledger's to the cent
    assert result.ledger_cash is not None and result.broker_cash is not None
    assert abs(result.broker_cash - result.ledger_cash) < Decimal("0.01")
    assert result.broker_cash < Decimal(1_000_000), "the broker's side shows the purchases"
    assert mismatch_events(traded) == []
    assert not deployments.get_deployment(traded, "rec").halted


def test_a_gap_under_one_percent_is_tolerated(traded, settings):
    symbol = sorted(ledger_positions(traded))[0]
    scale_ledger(traded, symbol, "1.005")

    result = reconcile(traded, settings, "rec")

    assert (result.mismatches, result.halted) == ([], False)
    assert mismatch_events(traded) == []
    assert not deployments.get_deployment(traded, "rec").halted


def test_a_gap_over_one_percent_halts_the_deployment_with_a_critical_alert(traded, settings):
    held = ledger_positions(traded)
    symbol = sorted(held)[0]
    broker_side = PaperBroker(
        traded, deployments.get_deployment(traded, "rec").live_config(settings)
    ).positions()[symbol]
    scale_ledger(traded, symbol, "1.02")

    result = reconcile(traded, settings, "rec")

    assert [(m.symbol, m.broker) for m in result.mismatches] == [(symbol, broker_side)]
    assert result.mismatches[0].difference == pytest.approx(
        Decimal("0.02") / Decimal("1.02"), rel=Decimal("1e-6")
    )
    assert result.halted
    events = mismatch_events(traded)
    assert [(severity, metadata["deployment"]) for severity, metadata in events] == [
        ("critical", "rec")
    ]
    halted = deployments.get_deployment(traded, "rec")
    assert halted.halted and halted.halted_by == "reconcile" and symbol in str(halted.halt_reason)


def test_a_position_the_broker_does_not_hold_is_a_mismatch(traded, settings):
    with traded.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.positions (deployment, symbol, quantity) "
                "VALUES ('rec', 'XYZ', 10)"
            )
        )

    result = reconcile(traded, settings, "rec")

    assert [(m.symbol, m.ledger, m.broker) for m in result.mismatches] == [
        ("XYZ", Decimal(10), Decimal(0))
    ]
    assert deployments.get_deployment(traded, "rec").halted


def test_the_cli_reports_agreement_then_a_mismatch(traded, settings):
    cli = CliRunner()
    agreed = cli.invoke(app, ["runner", "reconcile", "rec"])
    symbol = sorted(ledger_positions(traded))[0]
    scale_ledger(traded, symbol, "0.9")
    differed = cli.invoke(app, ["runner", "reconcile", "rec"])

    assert agreed.exit_code == 0, agreed.output
    assert "agree with the broker" in agreed.output
    assert differed.exit_code == 1, differed.output
    assert symbol in differed.output and "halted" in differed.output
    assert deployments.get_deployment(traded, "rec").halted
    assert len(mismatch_events(traded)) == 1
