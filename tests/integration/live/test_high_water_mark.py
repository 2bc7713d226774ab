"""The circuit breaker measures drawdown from the deployment's true peak: the high-water mark is
kept by the database as snapshots are written, so a peak older than any window of snapshots the
cycle reads still counts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import text

from prism import ledger
from prism.live import cycle, deployments, risk
from tests.integration.runner_support import SYMBOLS, FixedSource, deploy, loosen_limits

SNAPSHOTS = 1_200
"""More snapshots after the peak than the 1,000 the cycle reads for its risk figures."""


def _snapshots(engine, deployment: str, as_of, equities: list[float]) -> None:
    """Write one snapshot a minute, oldest first, ending a minute before ``as_of``."""
    with engine.begin() as conn:
        for i, equity in enumerate(equities):
            conn.execute(
                text(
                    "INSERT INTO trading.portfolio_snapshots (time, deployment, cash, "
                    "market_value, equity, gross_exposure, net_exposure) "
                    "VALUES (:t, :d, :e, 0, :e, 0, 0)"
                ),
                {"t": as_of - timedelta(minutes=len(equities) - i), "d": deployment, "e": equity},
            )


def test_a_peak_older_than_a_thousand_snapshots_still_trips_the_drawdown_breaker(stocked, settings):
    deploy(stocked, "peaked")
    loosen_limits(stocked, "only the drawdown limit binds")
    with stocked.begin() as conn:
        risk.set_limit(conn, "max_drawdown", 0.2, "test", deployment="peaked")
    as_of = cycle.newest_bar(stocked, list(SYMBOLS), "1d")
    _snapshots(stocked, "peaked", as_of, [2_000_000.0] + [1_000_000.0] * (SNAPSHOTS - 1))

    report = cycle.run_cycle(stocked, settings, "peaked", as_of=as_of, source=FixedSource())

    with stocked.connect() as conn:
        assert ledger.high_water_mark(conn, "peaked") == Decimal("2000000")
    assert report.outcome == "breaker"
    state = deployments.get_deployment(stocked, "peaked")
    assert state.halted and "drawdown" in (state.halt_reason or "")


def test_the_high_water_mark_only_rises_and_a_deployment_without_one_has_none(stocked):
    deploy(stocked, "rising")
    as_of = cycle.newest_bar(stocked, list(SYMBOLS), "1d")
    _snapshots(stocked, "rising", as_of, [1.0e6, 1.2e6, 0.9e6, 1.1e6])

    with stocked.connect() as conn:
        assert ledger.high_water_mark(conn, "rising") == Decimal("1200000")
        assert ledger.high_water_mark(conn, "never-traded") is None
