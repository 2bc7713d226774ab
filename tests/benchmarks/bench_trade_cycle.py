"""One live trade cycle on minute bars, for 1, 10 and 100 symbols: the cycle's own work
(:func:`prism.live.cycle.run_cycle`) against the whole Prefect flow run around it
(``runner.flows.trade_cycle``), p50 and p99 latency of each.

The workspace: a fresh embedded PostgreSQL with 100 synthetic minute random walks (fixed seed,
2,000 bars each, so the bar reads run on a table of realistic depth), a real MLflow store with
an SMA crossover (5/20, long or short, so every symbol always holds a position) logged and
promoted to champion through :func:`prism.registry.promotion.promote`, the default risk limits
(checked, never binding), and the paper broker. Each deployment rebalances with ``band=0`` and half
its equity invested (``max_leverage=0.5``, so no buy waits for cash), so every cycle trades: it
books the previous bar's fills, values the book, writes the risk snapshot, reads the bars, asks
the model, and records and sends an order for (nearly) every symbol.

Per size there are two deployments over the same symbols and bars; they advance bar by bar in
lockstep, one cycle called directly, the other through ``asyncio.run(trade_cycle(...))`` (Prefect
in ephemeral mode: with no ``PREFECT_API_URL`` it runs its own local API server, as
``python -m runner`` does), so both measure the same work on the same bar. The first cycles
(model loading, Prefect's server start) are untimed. A cycle's time runs from the call with the
bar already stored to the return with its orders recorded and sent.

The table's "peer" is the flow run, so the ratio column is flow time over cycle time (rates are
symbols traded per second, so that sizes compare); the notes
give the milliseconds, Prefect's overhead per cycle (flow p50 - cycle p50) per size, and the
goal: the cycle's p99 under 250 ms at 100 symbols.

The alert outbox: at 100 symbols a third deployment advances in the same lockstep with an alert
URL that answers after ``SLOW_SINK_SECONDS`` (a real local webhook) and no de-duplication window,
so every cycle's ``fill`` alert would be sent if the cycle sent alerts. Its :func:`run_cycle`
time is the deployment's locked section (the call is the lock's ``with`` block); the row compares
it with the plain cycle's (no alert URL): a ratio ~1 says the outbox adds no network time under the
lock. Sending the queued alerts afterwards (:func:`prism.live.alerts.deliver_alerts`) is noted.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import SecretStr
from sqlalchemy import Engine

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.settings import GateSettings, Settings
from prism.data.store import upsert_bars
from prism.live import cycle, deployments
from prism.live.alerts import deliver_alerts
from prism.registry import promotion
from prism.registry.gates import Overrides
from prism.research import tracking
from prism.research.evaluation import oos_start, validation_tags
from prism.strategies import SmaCrossover
from tests.benchmarks.measure import Measurement
from tests.benchmarks.row import Row, run_alone
from tests.benchmarks.synthetic import random_walk_bars
from tests.benchmarks.workspace import fresh_workspace
from tests.integration.webhook import serve_webhook

SIZES = (1, 10, 100)
SLOW_SINK_SECONDS = 0.2
HISTORY = 2_000
CYCLES = int(os.environ.get("PRISM_BENCH_CYCLES", "40"))
UNTIMED = 3
MODEL = "bench-trade-cycle"
STRATEGY = SmaCrossover(fast=5, slow=20, allow_short=True)
GOAL_MS = 250.0
PEER = "the same cycle as a Prefect flow run"
QUIET = "the same cycle with no alert URL"
LENIENT = GateSettings(min_sharpe=-100.0, max_drawdown=1.0, min_trades=1, min_deflated_sharpe=0.0)


def _promote(settings: Settings, engine: Engine, bars: pd.DataFrame) -> None:
    """Backtest the strategy on the stored ``bars``, log it as a research run and promote it
    to champion (the gates recompute its evidence; synthetic bars follow no exchange calendar,
    so the data-gaps gate is waived, with that reason)."""
    config = BacktestConfig()
    result = run_backtest(bars, STRATEGY, config)
    checks = validation_tags(STRATEGY, bars, config)
    with tracking.research_run(settings) as run_id:
        tracking.log_backtest_evidence(
            STRATEGY,
            bars,
            result,
            sorted(bars["symbol"].unique()),
            oos_start(bars),
            {**checks, "git_dirty": "false"},
        )
    waiver = Overrides(data_gaps=True, reason="synthetic bars follow no exchange calendar")
    promoted = promotion.promote(
        settings, run_id, LENIENT, "benchmark", engine=engine, overrides=waiver
    )
    if not promoted.promoted:
        raise RuntimeError(f"benchmark model not promoted: {promoted.failed()}")


def _deploy(engine: Engine, name: str, symbols: list[str]) -> None:
    deployments.upsert_deployment(
        engine,
        deployments.Deployment(
            name,
            tuple(symbols),
            "1m",
            1_000_000.0,
            model_name=MODEL,
            params={"band": 0.0, "max_leverage": 0.5},
        ),
    )


def _timed(call: Callable[[], dict[str, Any]], first: bool, counts: list[int]) -> float:
    """Time one cycle and add its orders and fills to ``counts``; refuse a cycle that sent no
    order or (after the first) booked no fill, so no figure comes from an idle cycle."""
    started = time.perf_counter()
    report = call()
    seconds = time.perf_counter() - started
    if report["outcome"] != "traded" or not report["orders"] or not (first or report["fills"]):
        raise RuntimeError(f"a benchmark cycle did not trade: {report}")
    counts[0] += report["orders"]
    counts[1] += report["fills"]
    return seconds


def _measure_size(
    engine: Engine, settings: Settings, size: int, times: list[datetime], slow: Settings | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Return the cycle and flow seconds of ``size`` symbols over the timed bars of ``times``,
    the seconds of the same cycle under ``slow``'s alert sink (empty without ``slow``), and the
    orders and fills of the timed direct cycles."""
    from runner.flows import trade_cycle

    symbols = [f"S{k:03d}" for k in range(size)]
    direct, flowed, alerted = f"cycle{size}", f"flow{size}", f"alerted{size}"
    _deploy(engine, direct, symbols)
    _deploy(engine, flowed, symbols)
    if slow is not None:
        _deploy(engine, alerted, symbols)
    cycles, flows, locked = [], [], []
    counts, ignored = [0, 0], [0, 0]
    for k, as_of in enumerate(times):

        def by_call(t: datetime = as_of) -> dict[str, Any]:
            return cycle.run_cycle(engine, settings, direct, as_of=t).as_dict()

        def by_flow(t: datetime = as_of) -> dict[str, Any]:
            return asyncio.run(trade_cycle(deployment=flowed, as_of=t))

        timed = counts if k >= UNTIMED else ignored
        seconds = _timed(by_call, k == 0, timed), _timed(by_flow, k == 0, ignored)
        if slow is not None:

            def under_slow_sink(t: datetime = as_of, s: Settings = slow) -> dict[str, Any]:
                return cycle.run_cycle(engine, s, alerted, as_of=t).as_dict()

            alerted_seconds = _timed(under_slow_sink, k == 0, ignored)
            if k >= UNTIMED:
                locked.append(alerted_seconds)
        if k >= UNTIMED:
            cycles.append(seconds[0])
            flows.append(seconds[1])
    return np.array(cycles), np.array(flows), np.array(locked), counts


def _ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1000.0)


def run(notes: list[str]) -> list[Row]:
    """Return a p50 and a p99 row per size (cycle against flow run) and note the figures."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as STARTUP
    from prefect.settings import temporary_settings

    warnings.simplefilter("ignore")
    bars = random_walk_bars(
        max(SIZES), HISTORY, timeframe="1m", volatility=0.0008, drift=0.0, seed=11
    )
    times = sorted(bars["time"].unique())
    replayed = [pd.Timestamp(t).to_pydatetime() for t in times[-(CYCLES + UNTIMED) :]]
    rows: list[Row] = []
    lines = []
    overheads = {}
    with (
        # Prefect reads its settings when first imported, maybe before the environment was set
        temporary_settings({STARTUP: 300}),
        tempfile.TemporaryDirectory() as folder,
        fresh_workspace(Path(folder), PRISM_MODEL_NAME=MODEL) as (engine, settings),
    ):
        sink = serve_webhook()
        hook = next(sink)
        hook.delay = SLOW_SINK_SECONDS
        slow = settings.model_copy(
            update={"alert_urls": SecretStr(hook.url("slow")), "alert_window_seconds": 0.0}
        )
        upsert_bars(engine, bars)
        _promote(settings, engine, bars[bars["symbol"].isin(["S000", "S001"])])
        for size in SIZES:
            measured = _measure_size(
                engine, settings, size, replayed, slow if size == max(SIZES) else None
            )
            cycles, flows, locked, (orders, fills) = measured
            for label, q in (("p50", 50.0), ("p99", 99.0)):
                rows.append(
                    Row(
                        f"trade cycle, {size} symbol{'s' if size > 1 else ''}, {label}",
                        "symbol-cycles/s",
                        size,
                        Measurement(float(np.percentile(cycles, q)), math.nan),
                        Measurement(float(np.percentile(flows, q)), math.nan),
                        PEER,
                    )
                )
            overheads[size] = _ms(flows, 50) - _ms(cycles, 50)
            lines.append(
                f"{size} symbol(s), {orders / CYCLES:.1f} orders and {fills / CYCLES:.1f} fills "
                f"per cycle: cycle p50 {_ms(cycles, 50):.0f} ms / p99 "
                f"{_ms(cycles, 99):.0f} ms, flow run p50 {_ms(flows, 50):.0f} ms / p99 "
                f"{_ms(flows, 99):.0f} ms, flow/cycle {np.median(flows) / np.median(cycles):.1f}x, "
                f"Prefect overhead {overheads[size]:.0f} ms"
            )
        largest = _ms(cycles, 99)
        for label, q in (("p50", 50.0), ("p99", 99.0)):
            rows.append(
                Row(
                    f"trade cycle, {max(SIZES)} symbols, locked section with a slow alert "
                    f"sink, {label}",
                    "symbol-cycles/s",
                    max(SIZES),
                    Measurement(float(np.percentile(locked, q)), math.nan),
                    Measurement(float(np.percentile(cycles, q)), math.nan),
                    QUIET,
                )
            )
        started = time.perf_counter()
        delivered = deliver_alerts(engine, slow)
        sending = time.perf_counter() - started
        sink.close()
        received = len(hook.keys.get("slow", []))
    verdict = "met" if largest < GOAL_MS else "MISSED"
    growth = overheads[max(SIZES)] - overheads[min(SIZES)]
    notes.append(
        f"trade cycle: {CYCLES} timed cycles per size on 1m bars (paper broker, every cycle "
        "books fills and sends orders; p99 of that many samples is close to the "
        "maximum): " + "; ".join(lines)
    )
    notes.append(
        f"alert outbox: at {max(SIZES)} symbols every cycle raised a fill alert with an alert "
        f"URL answering after {SLOW_SINK_SECONDS * 1000:.0f} ms: locked section (run_cycle) p50 "
        f"{_ms(locked, 50):.0f} ms / p99 {_ms(locked, 99):.0f} ms against {_ms(cycles, 50):.0f} "
        f"/ {_ms(cycles, 99):.0f} ms with no URL (p50 ratio "
        f"{np.median(locked) / np.median(cycles):.2f}); afterwards one deliver_alerts run took "
        f"{len(delivered)} rows of the queue (every deployment's fill alerts; its limit is 200), "
        f"{received} reached the slow URL, in {sending:.1f} s, outside any lock"
    )
    notes.append(
        f"trade cycle goal: cycle p99 < {GOAL_MS:.0f} ms at {max(SIZES)} symbols: {verdict} "
        f"({largest:.0f} ms); Prefect's overhead per cycle changes by {growth:+.0f} ms from "
        f"{min(SIZES)} to {max(SIZES)} symbols (one flow run per cycle, no task per symbol)"
    )
    return rows


if __name__ == "__main__":
    run_alone(run)
