"""`prism runner limits`: the risk limits every cycle reads, listed and changed from the CLI."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from typer.testing import CliRunner

from prism.cli.app import app
from prism.live import risk
from tests.integration.runner_support import deploy


def test_limits_are_listed_with_their_defaults_and_meaning(engine):
    result = CliRunner().invoke(app, ["runner", "limits", "list"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    for key, (value, description) in risk.DEFAULTS.items():
        line = next(line for line in result.output.splitlines() if key in line)
        assert f"{value:g}" in line and description[:20] in line


def test_a_changed_limit_is_what_the_next_cycle_reads_and_is_recorded(engine):
    result = CliRunner().invoke(app, ["runner", "limits", "set", "max_position_pct", "0.2"])

    assert result.exit_code == 0, result.output
    assert "max_position_pct = 0.2 (was 1)" in result.output
    with engine.begin() as conn:
        assert risk.load_limits(conn).max_position_pct == Decimal("0.2")
        (event,) = conn.execute(
            text("SELECT metadata FROM audit.system_events WHERE event_type = 'risk_limit_changed'")
        ).scalars()
    assert (event["key"], event["previous"], event["value"]) == ("max_position_pct", 1.0, 0.2)


def test_an_unknown_or_negative_limit_is_refused_naming_the_known_ones(engine):
    unknown = CliRunner().invoke(app, ["runner", "limits", "set", "max_leverage", "2"])
    negative = CliRunner().invoke(app, ["runner", "limits", "set", "max_drawdown", "--", "-1"])

    assert unknown.exit_code == 1
    assert "unknown risk limit max_leverage" in str(unknown.exception)
    assert "max_position_pct" in str(unknown.exception)
    assert negative.exit_code == 1
    assert "must be a positive number" in str(negative.exception)
    with engine.begin() as conn:
        assert risk.load_limits(conn) == risk.RiskLimits()


def test_a_deployments_own_limit_overrides_the_global_one_for_it_alone(engine):
    for name in ("capped", "free"):
        deploy(engine, name)
    result = CliRunner().invoke(
        app, ["runner", "limits", "set", "max_position_pct", "0.2", "--deployment", "capped"]
    )

    assert result.exit_code == 0, result.output
    assert "max_position_pct for capped = 0.2 (was 1)" in result.output
    with engine.begin() as conn:
        assert risk.load_limits(conn, "capped").max_position_pct == Decimal("0.2")
        assert risk.load_limits(conn, "free").max_position_pct == 1.0
        assert risk.load_limits(conn).max_position_pct == 1.0
    listed = CliRunner().invoke(
        app, ["runner", "limits", "list", "--deployment", "capped"], env={"COLUMNS": "200"}
    )
    line = next(line for line in listed.output.splitlines() if "max_position_pct" in line)
    assert "0.2" in line and "capped" in line


def test_a_limit_for_an_unknown_deployment_is_refused_with_how_to_add_it(engine):
    result = CliRunner().invoke(
        app, ["runner", "limits", "set", "max_drawdown", "0.1", "--deployment", "ghost"]
    )

    assert result.exit_code == 1
    assert "no deployment 'ghost'" in str(result.exception)
