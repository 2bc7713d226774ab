"""One trade cycle of one deployment, as the runner's ``trade_cycle`` flow runs it.

For the deployment's newest bar (or ``as_of`` in a replay): refuse on stale data; resolve the
model alias (a moved alias is noticed here and logged as ``model_alias_changed``); settle orders
a crashed cycle left ``pending``; book the broker's fills; value the portfolio; read the risk
limits and write a risk snapshot; trip the circuit breaker on a daily-loss or drawdown breach;
and, unless halted, decide, check and send orders (:func:`prism.live.steps.decide`). A version the
alias points at for the first time trades only after :mod:`prism.registry.checks` passes it
(signature, approval record, lineage); a refused one raises one critical ``model_refused`` alert
and the deployment keeps trading the version it last traded. Every step is
idempotent, so a cycle repeated for the same bar (a Prefect retry, a restart after a crash)
changes nothing that the first one did.

:func:`run_guarded` retries a cycle while the database is unreachable, with exponential
backoff, then halts the deployment and raises a critical alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from prism import ledger
from prism.brokers.port import Broker, submit_all, submitted
from prism.core.errors import DataUnavailable, TransientError
from prism.core.events import record_event
from prism.core.settings import Settings
from prism.data.bars import INTERVALS
from prism.data.health import missed_bars
from prism.data.store import newest_time
from prism.live import deployments, risk, steps
from prism.live.alerts import enqueue_alert, raise_alert
from prism.live.sources import CheckedSource, StrategySource, registry_source
from prism.registry import checks


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did."""

    deployment: str
    as_of: datetime
    outcome: str
    """``traded`` (decided; orders may be zero), ``halted``, ``stale``, ``refused`` (bad data,
    or a refused model and no earlier version to trade),
    ``breaker`` (the circuit breaker tripped at this bar) or ``superseded`` (a later bar was
    already traded: a late retry or a restarted replay, which must change nothing)."""
    fills: int
    orders: int
    equity: float
    model_version: str | None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the report as the flow returns it."""
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


def newest_bar(
    engine: Engine, symbols: list[str], timeframe: str, closed_by: datetime | None = None
) -> datetime:
    """Return the time of the newest bar stored for any of ``symbols``; with ``closed_by``, the
    newest one whose interval had ended by then (a bar still forming is never traded)."""
    cutoff = None if closed_by is None else closed_by - INTERVALS[timeframe].to_pytimedelta()
    newest = newest_time(engine, symbols, timeframe, cutoff)
    if newest is None:
        closed = "" if closed_by is None else f" closed by {closed_by:%Y-%m-%d %H:%M} UTC"
        raise DataUnavailable(
            f"no {timeframe} bars{closed} stored for {', '.join(symbols)}; ingest some first "
            "(`prism data ingest ...`)"
        )
    return newest


def _equity_history(engine: Engine, deployment: str, as_of: datetime) -> pd.Series:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT time, equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                "AND time <= :t ORDER BY time DESC LIMIT 1000"
            ),
            {"d": deployment, "t": as_of},
        ).all()
    return pd.Series({t: Decimal(e) for t, e in rows}, dtype=object).sort_index()


def _alias_moved(
    engine: Engine, deployment: deployments.Deployment, name: str, version: str
) -> None:

    if deployment.last_model_version == version:
        return
    with engine.begin() as conn:
        if deployment.last_model_version is not None:
            record_event(
                conn,
                "model_alias_changed",
                "warning",
                "runner",
                f"{deployment.name}: alias {deployment.model_alias!r} of {name} moved from "
                f"version {deployment.last_model_version} to {version}; trading {version} "
                "from this cycle on",
                {
                    "deployment": deployment.name,
                    "model_name": name,
                    "alias": deployment.model_alias,
                    "previous_version": deployment.last_model_version,
                    "version": version,
                },
            )
        deployments.set_model_version(conn, deployment.name, version)


def _vetted_version(
    engine: Engine,
    settings: Settings,
    deployment: deployments.Deployment,
    source: StrategySource,
    name: str,
    version: str,
    as_of: datetime,
) -> tuple[str | None, str]:
    """Return the version to trade (None: none may) and, when it is not ``version`` (the
    alias's), why: a version new to the deployment trades only if the model checks pass it;
    otherwise the version that last traded goes on trading and one critical alert is raised."""
    last = deployment.last_model_version
    if version == last or not isinstance(source, CheckedSource):
        return version, ""
    bars = checks.sample_bars(engine, list(deployment.symbols), deployment.timeframe, as_of)
    verdict = source.check(engine, name, version, bars)
    if verdict.passed:
        return version, ""
    kept = f"version {last} keeps trading" if last else "no earlier version to trade; not trading"
    reason = f"{verdict.describe()}; {kept}"
    if not checks.refusal_recorded(engine, deployment.name, name, version):
        alert(
            engine,
            settings,
            checks.REFUSED_EVENT,
            "critical",
            f"{deployment.name}: {reason}",
            {
                "deployment": deployment.name,
                "model_name": name,
                "alias": deployment.model_alias,
                "version": version,
                "trading_version": last,
                "problems": list(verdict.problems),
            },
        )
    return last, reason


def alert(
    engine: Engine,
    settings: Settings,
    kind: str,
    severity: str,
    message: str,
    metadata: dict[str, Any],
) -> None:
    """Raise an alert: queued in the outbox with its system event, sent later by the
    ``deliver_alerts`` flow, so no network call happens while the cycle holds its lock."""
    raise_alert(engine, kind, severity, "runner", message, metadata)


def halt_deployment(
    engine: Engine, settings: Settings, name: str, reason: str, by: str, kind: str
) -> bool:
    """Halt ``name`` and raise a critical alert; return False if it was already halted."""
    with engine.begin() as conn:
        changed = deployments.halt(conn, name, reason, by)
        if changed:
            message = f"{name} halted: {reason}"
            enqueue_alert(conn, kind, "critical", "runner", message, {"deployment": name})
    return changed


def run_cycle(
    engine: Engine,
    settings: Settings,
    name: str,
    as_of: datetime | None = None,
    now: datetime | None = None,
    broker: Broker | None = None,
    source: StrategySource | None = None,
) -> CycleReport:
    """Run deployment ``name``'s cycle for the bar at ``as_of`` (default: its newest stored
    bar, judged for staleness against ``now``, default the wall clock), holding the
    deployment's lock so a reconciliation never runs in the middle of it."""
    with deployments.exclusive(engine, name):
        return _cycle(engine, settings, name, as_of, now, broker, source)


def _cycle(
    engine: Engine,
    settings: Settings,
    name: str,
    as_of: datetime | None,
    now: datetime | None,
    broker: Broker | None,
    source: StrategySource | None,
) -> CycleReport:
    deployment = deployments.get_deployment(engine, name)
    config = deployment.live_config(settings)
    ledger.ensure_account(engine, name, ledger.to_decimal(deployment.capital, ledger.CASH_STEP))
    broker = broker or deployment.open_broker(engine, settings)
    source = source or registry_source(settings, deployment.model_name)
    if as_of is None:
        now = now or datetime.now(UTC)
        as_of = newest_bar(engine, list(config.symbols), config.timeframe, closed_by=now)

    with engine.connect() as conn:
        last = ledger.last_cycle(conn, name)
    if last is not None and pd.Timestamp(last[0]) > pd.Timestamp(as_of):
        reason = f"a later bar ({last[0]}) was already traded; nothing to do for {as_of}"
        return CycleReport(name, as_of, "superseded", 0, 0, float(last[1] or 0), None, reason)

    model_name, alias_version = source.current(deployment.model_alias)
    version, refusal = _vetted_version(
        engine, settings, deployment, source, model_name, alias_version, as_of
    )
    if not refusal:
        _alias_moved(engine, deployment, model_name, alias_version)
    strategy = source.load(deployment.model_alias, version) if version else None

    def report(
        outcome: str, fills: int, orders: int, equity: float, reason: str = ""
    ) -> CycleReport:
        return CycleReport(name, as_of, outcome, fills, orders, equity, version, reason)

    steps.recover_pending(engine, broker, name, as_of)
    fills = steps.fill_open_orders(engine, broker, name, as_of)
    steps.checkpoint("after_fills")
    if fills:
        message = f"{name}: {fills} fill(s) booked at {as_of}"
        alert(engine, settings, "fill", "info", message, {"deployment": name, "fills": fills})
    exact_equity = steps.snapshot(engine, config, as_of)["equity"]
    equity = float(exact_equity)
    steps.checkpoint("after_snapshot")

    breaker, limits = _risk_snapshot(engine, deployment, config, as_of, exact_equity)
    if deployment.halted:
        reason = f"deployment halted by {deployment.halted_by}: {deployment.halt_reason}"
        steps.record_skip(engine, config, model_name, version, as_of, reason, {"halted": True})
        return report("halted", fills, 0, equity, reason)
    if breaker.tripped:
        reason = breaker.reason(limits)
        halt_deployment(engine, settings, name, reason, "circuit breaker", "circuit_breaker")
        checks = {
            "breaker": breaker.tripped,
            "daily_loss": float(breaker.daily_loss),
            "drawdown": float(breaker.drawdown),
        }
        steps.record_skip(engine, config, model_name, version, as_of, reason, checks)
        return report("breaker", fills, 0, equity, reason)
    if now is not None:
        missed = missed_bars(engine, list(config.symbols), config.timeframe, as_of, now)
        if missed >= settings.runner_stale_intervals:
            reason = (
                f"stale data: the newest {config.timeframe} bar is from {as_of}, and {missed} "
                "bars the trading calendar expected since have not arrived (the limit is "
                f"{settings.runner_stale_intervals}); not trading"
            )
            alert(
                engine, settings, "stale_data", "error", f"{name}: {reason}", {"deployment": name}
            )
            steps.record_skip(engine, config, model_name, version, as_of, reason, {"stale": True})
            return report("stale", fills, 0, equity, reason)
    if strategy is None:
        checks = {"model_checks": False, "refused_version": alias_version}
        steps.record_skip(engine, config, model_name, alias_version, as_of, refusal, checks)
        return report("refused", fills, 0, equity, refusal)
    try:
        orders = steps.decide(
            engine, broker, strategy, config, as_of, now, limits, deployment.min_notional
        )
    except DataUnavailable as err:
        steps.record_skip(engine, config, model_name, version, as_of, str(err), {"data": False})
        return report("refused", fills, 0, equity, str(err))
    _alert_breaches(engine, settings, name, as_of)
    return report("traded", fills, len(orders), equity, refusal)


def _alert_breaches(engine: Engine, settings: Settings, name: str, as_of: datetime) -> None:
    """Raise one ``risk_breach`` alert naming the orders the pre-trade checks trimmed or
    rejected at ``as_of`` (read back from the cycle's audit decisions)."""
    with engine.connect() as conn:
        breaches = conn.execute(
            text(
                "SELECT symbol, action, reasoning FROM audit.decisions WHERE deployment = :d "
                "AND time = :t AND risk_check ->> 'outcome' IN ('trim', 'reject') ORDER BY symbol"
            ),
            {"d": name, "t": as_of},
        ).all()
    if breaches:
        lines = "; ".join(f"{symbol} {action}: {why}" for symbol, action, why in breaches)
        metadata = {"deployment": name, "symbols": [b.symbol for b in breaches]}
        alert(engine, settings, "risk_breach", "warning", f"{name} at {as_of}: {lines}", metadata)


def _risk_snapshot(
    engine: Engine,
    deployment: deployments.Deployment,
    config: steps.LiveConfig,
    as_of: datetime,
    equity: Decimal,
) -> tuple[risk.BreakerCheck, risk.RiskLimits]:
    """Read the limits, judge the circuit breaker at ``as_of`` on exact equity and store the
    risk snapshot."""
    history = _equity_history(engine, deployment.name, as_of)
    start_of_day = pd.Timestamp(as_of).normalize()
    earlier = history[history.index < start_of_day]
    capital = ledger.to_decimal(deployment.capital, ledger.CASH_STEP)
    previous_close = earlier.iloc[-1] if len(earlier) else capital
    with engine.begin() as conn:
        mark = ledger.high_water_mark(conn, deployment.name)
        peak = max(mark if mark is not None else equity, equity, capital)
        limits = risk.load_limits(conn, deployment.name)
        held = ledger.holdings(conn, deployment.name)
        marks = steps.latest_closes(conn, list(config.symbols), config.timeframe, as_of)
        breaker = risk.check_breaker(equity, previous_close, peak, limits)
        book = risk.Book(equity, held, {s: marks.get(s, Decimal(0)) for s in held} | marks)
        row = risk.risk_snapshot(history.astype(float), book, limits, breaker)
        risk.record_risk_snapshot(conn, deployment.name, as_of, row)
    return breaker, limits


def _is_outage(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated
        or "connect" in str(error.orig).lower()
        or type(error.orig).__name__ == "OperationalError"
    )


class DatabaseOutage(TransientError):
    """The database stayed unreachable through every retry of a cycle."""


def run_guarded(engine: Engine, settings: Settings, name: str, **kwargs: Any) -> CycleReport:
    """Run :func:`run_cycle`, retrying while the database is unreachable (exponential backoff,
    ``settings.runner_db_attempts`` tries); then halt the deployment, alert, and raise
    :class:`DatabaseOutage`. The halt and the alert need the database too: if it is still
    down, the error says so and the next cycle (the same bar, idempotent) tries again."""
    retrying = Retrying(
        retry=retry_if_exception(_is_outage),
        stop=stop_after_attempt(settings.runner_db_attempts),
        wait=wait_exponential(multiplier=settings.runner_db_backoff_seconds),
        reraise=False,
    )
    try:
        return retrying(run_cycle, engine, settings, name, **kwargs)
    except RetryError as err:
        cause = err.last_attempt.exception()
        reason = (
            f"database unreachable through {settings.runner_db_attempts} tries of the cycle: "
            f"{type(cause).__name__}: {str(cause).splitlines()[0] if cause else ''}"
        )
        try:
            halt_deployment(engine, settings, name, reason, "runner", "db_outage")
        except DBAPIError:
            raise DatabaseOutage(
                f"{name}: {reason}; could not record the halt either (database still down)"
            ) from cause
        raise DatabaseOutage(f"{name}: {reason}; deployment halted") from cause


def flatten(engine: Engine, settings: Settings, name: str, by: str) -> list[ledger.OrderRow]:
    """Halt ``name``, cancel its open orders and send orders closing every position at the
    next price (the kill switch's ``--flatten``); return them. Their fills are booked by the
    next cycles, which keep booking fills while the deployment is halted."""
    deployment = deployments.get_deployment(engine, name)
    config = deployment.live_config(settings)
    halt_deployment(engine, settings, name, f"kill switch by {by}, flattening", by, "kill_switch")
    as_of = newest_bar(engine, list(config.symbols), config.timeframe)
    broker = deployment.open_broker(engine, settings)
    orders = []
    with engine.begin() as conn:
        for waiting in ledger.open_orders(conn, name):
            ledger.cancel_rest(conn, waiting.client_order_id)
        for symbol, quantity in sorted(ledger.holdings(conn, name).items()):
            order = ledger.OrderRow(
                client_order_id=steps.client_order_id(name, symbol, as_of) + ":flatten",
                deployment=name,
                symbol=symbol,
                side="sell" if quantity > 0 else "buy",
                quantity=abs(Decimal(quantity)),
                strategy="kill switch",
                model_name=None,
                model_version=deployment.last_model_version,
                decided_at=as_of,
                broker=broker.name,
            )
            if ledger.insert_order(conn, order, None, status="pending"):
                orders.append(order)
            ledger.record_decision(
                conn,
                {
                    "time": as_of,
                    "deployment": name,
                    "decision_type": "flatten",
                    "symbol": symbol,
                    "model_name": None,
                    "model_version": deployment.last_model_version,
                    "signals": {"held": float(quantity)},
                    "risk_check": {"passed": True, "kill_switch": True},
                    "action": order.side,
                    "reasoning": f"kill switch by {by}: close {quantity} {symbol}",
                    "client_order_id": order.client_order_id,
                },
            )
    sent = submit_all(broker, orders)
    with engine.begin() as conn:
        ledger.set_order_statuses(conn, submitted(sent))
    return orders
