"""Crash safety: a runner SIGKILLed at each step of a cycle, then restarted, ends with exactly
the orders, fills, positions and cash of a run that was never interrupted, and never sends a
second order for a bar (the paper broker's own books hold one order per bar and symbol)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import text

from prism.live import cycle, steps
from tests.integration.runner_support import SYMBOLS, FixedSource, deploy

BARS = 40
KILLS = [
    "after_fill:2",
    "after_fills:6",
    "after_snapshot:9",
    "after_record_pending:2",
    "after_submit:2",
    "after_mark_sent:1",
]
"""Where each crashed run dies: the step of :func:`prism.live.steps.checkpoint` and which time it is
reached (each restart replays from the first bar, so later kills land in later cycles)."""

CHILD = """
import sys
from prism.live import cycle, steps
from prism.core.settings import load_settings
from prism.db.engine import open_database
from prism.strategies import SmaCrossover

class Source:
    strategy = SmaCrossover(fast=5, slow=20)
    def current(self, alias):
        return "test-model", "1"
    def load(self, alias, version):
        s = self.strategy
        return steps.LiveStrategy(s.name, "test-model", version, s.warmup, s.target_weights)

settings = load_settings()
engine = open_database(settings)
for as_of in steps.replay_times(engine, ["SPX", "NDX"], int(sys.argv[2])):
    cycle.run_cycle(engine, settings, sys.argv[1], as_of=as_of, source=Source())
"""
"""The crashed runner's script: self-contained, as it runs in a subprocess; its source is
:class:`tests.integration.runner_support.FixedSource`'s default, the clean run's."""


def _child(deployment: str, kill_at: str | None) -> int:
    env = dict(os.environ)
    env.pop("PRISM_TEST_KILL_AT", None)
    if kill_at:
        env["PRISM_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-c", CHILD, deployment, str(BARS)], env=env, check=False, timeout=300
    ).returncode


def _state(engine, deployment: str) -> dict[str, list]:
    queries = {
        "orders": "SELECT symbol, decided_at, side, quantity, status, filled_quantity, "
        "average_fill_price, commission FROM trading.orders WHERE deployment = :d "
        "ORDER BY decided_at, symbol",
        "fills": "SELECT symbol, time, side, quantity, price, commission FROM trading.fills "
        "WHERE deployment = :d ORDER BY time, symbol",
        "positions": "SELECT symbol, quantity, average_price, realized_pnl "
        "FROM trading.positions WHERE deployment = :d ORDER BY symbol",
        "cash": "SELECT cash FROM trading.accounts WHERE deployment = :d",
        "decisions": "SELECT time, symbol, action FROM audit.decisions WHERE deployment = :d "
        "ORDER BY time, symbol",
        "snapshots": "SELECT time, equity FROM trading.portfolio_snapshots "
        "WHERE deployment = :d ORDER BY time",
        "broker_orders": "SELECT symbol, decided_at, count(*) FROM trading.paper_orders "
        "WHERE deployment = :d GROUP BY 1, 2 ORDER BY 2, 1",
    }
    with engine.connect() as conn:
        return {
            name: [tuple(row) for row in conn.execute(text(sql), {"d": deployment})]
            for name, sql in queries.items()
        }


@pytest.fixture
def stocked(stocked):
    for name in ("clean", "crash"):
        deploy(stocked, name)
    return stocked


def test_a_runner_killed_at_every_step_ends_as_an_uninterrupted_one(stocked, settings):
    for as_of in steps.replay_times(stocked, list(SYMBOLS), BARS):
        cycle.run_cycle(stocked, settings, "clean", as_of=as_of, source=FixedSource())
    clean = _state(stocked, "clean")
    assert len(clean["orders"]) >= 4 and clean["fills"], "the window must trade"

    for kill_at in KILLS:
        assert _child("crash", kill_at) == -signal.SIGKILL, f"never reached {kill_at}"
    assert _child("crash", None) == 0

    crashed = _state(stocked, "crash")
    for table, rows in clean.items():
        differing = sorted(set(rows) ^ set(crashed[table]), key=str)
        assert crashed[table] == rows, f"{table} differ: {differing}"
    assert all(count == 1 for *_, count in crashed["broker_orders"])
