"""Crash safety: a runner SIGKILLed at each step of a cycle, then restarted, ends with exactly
the orders, fills, positions and cash of a run that was never interrupted, and never sends a
second order for a bar (the paper broker's own books hold one order per bar and symbol)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from sqlalchemy import text

from prism.live import cycle
from prism.live.replay import replay_times
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
import os, signal, sys
from prism.live import cycle, steps
from prism.live.replay import replay_times
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

kill_at = sys.argv[3] if len(sys.argv) > 3 else None
hits = {}

def crash_at(step, orders=1):
    # SIGKILL this process the n-th time `step` is reached (kill_at is "step:n").
    name, _, nth = kill_at.partition(":")
    before = hits.get(step, 0)
    hits[step] = before + orders
    if name == step and before < int(nth or 1) <= hits[step]:
        os.kill(os.getpid(), signal.SIGKILL)

if kill_at:
    steps.checkpoint = crash_at

settings = load_settings()
engine = open_database(settings)
for as_of in replay_times(engine, ["SPX", "NDX"], int(sys.argv[2])):
    cycle.run_cycle(engine, settings, sys.argv[1], as_of=as_of, source=Source())
"""
"""The crashed runner's script: self-contained, as it runs in a subprocess; its source is
:class:`tests.integration.runner_support.FixedSource`'s default, the clean run's. Given a kill
point (``step:n``), it replaces :func:`prism.live.steps.checkpoint` (the cycle's record of each
durable step) with one that SIGKILLs the process the n-th time that step is reached."""


def _child(deployment: str, kill_at: str | None) -> int:
    args = [sys.executable, "-c", CHILD, deployment, str(BARS), *([kill_at] if kill_at else [])]
    return subprocess.run(args, check=False, timeout=300).returncode


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
    for as_of in replay_times(stocked, list(SYMBOLS), BARS):
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
