"""The live runner's Prefect flows.

``trade_cycle`` trades the promoted model for one bar: book fills, decide and send orders,
snapshot the portfolio. ``replay`` runs ``trade_cycle`` once per bar over the newest stored
bars, which is how the demo trades the champion out of sample. All logic lives in
:mod:`prism.live`; the flows only compose it, retrying transient failures.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine

from prism import live
from prism.broker import PaperBroker
from prism.config import load_settings
from prism.db.engine import open_database
from prism.errors import TransientError
from prism.ledger import ensure_account, to_decimal

DEFAULT_SYMBOLS = ("SPX", "NDX")


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    return isinstance(state.result(raise_on_failure=False), TransientError)


@lru_cache(maxsize=1)
def _engine() -> Engine:
    return open_database(load_settings())


def _broker(config: live.LiveConfig) -> PaperBroker:
    return PaperBroker(_engine(), config, config.timeframe)


@lru_cache(maxsize=4)
def _strategy(alias: str, version_key: str) -> live.LiveStrategy:
    return live.load_live_strategy(load_settings(), alias)


@task(cache_policy=NONE, retries=2, retry_delay_seconds=1, retry_condition_fn=_is_transient)
def load_strategy(alias: str) -> live.LiveStrategy:
    """Load the model ``alias`` points at (cached per version within the process)."""
    from prism.registry import champion

    info = champion(load_settings(), alias)
    return _strategy(alias, f"{info.name}/{info.version}")


@task(cache_policy=NONE, retries=2, retry_delay_seconds=1, retry_condition_fn=_is_transient)
def book_fills(config: live.LiveConfig, as_of: datetime) -> int:
    """Book the paper broker's fills up to ``as_of``."""
    return live.fill_open_orders(_engine(), _broker(config), config.deployment, as_of)


@task(cache_policy=NONE)
def place_orders(
    strategy: live.LiveStrategy,
    config: live.LiveConfig,
    as_of: datetime,
    now: datetime | None = None,
) -> int:
    """Decide at ``as_of``'s close and send the orders; return how many were sent."""
    return len(live.decide(_engine(), _broker(config), strategy, config, as_of, now))


@task(cache_policy=NONE)
def take_snapshot(config: live.LiveConfig, as_of: datetime) -> float:
    """Value the portfolio at ``as_of``; return its equity."""
    return float(live.snapshot(_engine(), config, as_of)["equity"])


@flow(name="trade_cycle", log_prints=False)
async def trade_cycle(
    as_of: datetime | None = None,
    symbols: list[str] | None = None,
    alias: str = "champion",
    allow_gaps: bool = False,
) -> dict[str, Any]:
    """Trade the ``alias`` model for the bar at ``as_of`` (default: the newest stored bar,
    with live feeds checked for staleness against the wall clock). Bars with open gaps stop
    the cycle unless ``allow_gaps``.

    Declared ``async`` only because Prefect 3.8 joins a sync flow's heartbeat thread on exit,
    which costs up to a second per run (measured: 1.13 s sync, 0.38 s async); the steps
    themselves are ordinary blocking calls.
    """
    settings = load_settings()
    config = live.LiveConfig.from_settings(settings, tuple(symbols or DEFAULT_SYMBOLS))
    config = replace(config, allow_gaps=allow_gaps)
    ensure_account(_engine(), config.deployment, to_decimal(config.capital))
    now = None
    if as_of is None:
        now = datetime.now(UTC)
        as_of = live.replay_times(_engine(), list(config.symbols), 1, config.timeframe)[-1]
    strategy = load_strategy(alias)
    fills = book_fills(config, as_of)
    orders = place_orders(strategy, config, as_of, now)
    equity = take_snapshot(config, as_of)
    return {
        "as_of": as_of,
        "fills": fills,
        "orders": orders,
        "equity": equity,
        "model_version": strategy.model_version,
    }


def replay(
    bars: int = 60, symbols: list[str] | None = None, alias: str = "champion", progress: bool = True
) -> list[dict[str, Any]]:
    """Run :func:`trade_cycle` once per bar, oldest first, over the newest ``bars`` bars.

    Each bar is its own ``trade_cycle`` flow run, as a scheduled live runner would make it.
    Missing bars or a missing ``alias`` stop it before the first run, with one clear error.
    """
    from prism.registry import champion

    chosen = list(symbols or DEFAULT_SYMBOLS)
    times = live.replay_times(_engine(), chosen, bars)
    champion(load_settings(), alias)
    reports = []
    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        job = bar.add_task("replaying bars through trade_cycle", total=len(times))
        for as_of in times:
            reports.append(asyncio.run(trade_cycle(as_of=as_of, symbols=chosen, alias=alias)))
            bar.advance(job)
    return reports
