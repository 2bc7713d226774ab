"""Deployments: what the live runner trades, one row of ``config.strategies`` each.

A deployment names the model alias it follows, its symbols, timeframe and capital, the broker
it trades through (``paper``, ``alpaca`` or ``ccxt:<exchange>``, see
:mod:`prism.brokers.venues`) and the account there, and may
override the account's costs and sizing in ``params`` (``commission_bps``,
``commission_per_share``, ``slippage_bps``, ``band``, ``lot``, ``max_leverage``,
``min_notional``, ``allow_gaps``). The runner reads the rows at every cycle, so adding, editing,
disabling or halting a deployment takes effect without redeploying anything. ``halted`` is the
circuit breaker: set by a risk breach, a reconciliation mismatch, a database outage or
``prism runner halt``; cleared only by ``prism runner resume``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from prism.brokers.port import Broker
from prism.brokers.venues import PAPER, check_spec, open_broker
from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.live.risk import seed_default_limits
from prism.live.steps import LiveConfig

TIMEFRAMES = ("1m", "5m", "1h", "1d")
PARAMS = (
    "commission_bps",
    "commission_per_share",
    "slippage_bps",
    "band",
    "lot",
    "max_leverage",
    "min_notional",
    "allow_gaps",
    "participation",
)


@dataclass(frozen=True)
class Deployment:
    """One row of ``config.strategies``."""

    name: str
    symbols: tuple[str, ...]
    timeframe: str
    capital: float
    model_alias: str = "champion"
    strategy: str = "model"
    model_name: str | None = None
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str | None = None
    halted_at: datetime | None = None
    halted_by: str | None = None
    last_model_version: str | None = None
    broker: str = PAPER
    broker_account: str | None = None

    def live_config(self, settings: Settings) -> LiveConfig:
        """Return the account and sizing this deployment trades with: the settings' costs,
        overridden by the deployment's ``params``."""
        base = LiveConfig(
            deployment=self.name,
            symbols=self.symbols,
            timeframe=self.timeframe,
            capital=self.capital,
            commission_bps=settings.commission_bps,
            commission_per_share=settings.commission_per_share,
            slippage_bps=settings.slippage_bps,
        )
        overrides = {k: v for k, v in self.params.items() if k in PARAMS and k != "min_notional"}
        return replace(base, **overrides)

    def open_broker(self, engine: Engine, settings: Settings) -> Broker:
        """Return the broker this deployment trades through, with credentials from
        ``settings``."""
        config = self.live_config(settings)
        return open_broker(
            self.broker, engine, config, config.timeframe, settings, self.broker_account
        )

    @property
    def min_notional(self) -> float:
        """Return the smallest order (in currency) worth sending; smaller ones are skipped."""
        return float(self.params.get("min_notional", 0.0))


_COLUMNS = (
    "deployment AS name, symbols, timeframe, capital, model_alias, strategy, model_name, "
    "enabled, params, halted, halt_reason, halted_at, halted_by, last_model_version, broker, "
    "broker_account"
)


def _from_row(row: Any) -> Deployment:
    values = dict(row._mapping)
    values["symbols"] = tuple(values["symbols"])
    values["capital"] = float(values["capital"])
    return Deployment(**values)


def list_deployments(engine: Engine, enabled_only: bool = False) -> list[Deployment]:
    """Return every deployment (or only the enabled ones), by name."""
    where = "WHERE enabled" if enabled_only else ""
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {_COLUMNS} FROM config.strategies {where} ORDER BY deployment")
        ).all()
    return [_from_row(row) for row in rows]


def get_deployment(conn: Connection | Engine, name: str) -> Deployment:
    """Return deployment ``name``, or a ConfigError that says how to create it."""
    query = text(f"SELECT {_COLUMNS} FROM config.strategies WHERE deployment = :d")
    if isinstance(conn, Engine):
        with conn.connect() as c:
            row = c.execute(query, {"d": name}).one_or_none()
    else:
        row = conn.execute(query, {"d": name}).one_or_none()
    if row is None:
        raise ConfigError(
            f"no deployment {name!r} in config.strategies; add it with "
            f"`prism runner deployments add {name} --symbols SPX,NDX --timeframe 1d "
            "--capital 1e6`"
        )
    return _from_row(row)


def validate(deployment: Deployment) -> Deployment:
    """Return ``deployment`` if its fields make sense, else a ConfigError naming the fix."""
    if not deployment.name or not deployment.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"deployment name {deployment.name!r} must be letters, digits, '-' or '_'"
        )
    if not deployment.symbols or any(not s.strip() for s in deployment.symbols):
        raise ConfigError("a deployment needs at least one symbol: --symbols SPX,NDX")
    if deployment.timeframe not in TIMEFRAMES:
        raise ConfigError(
            f"timeframe {deployment.timeframe!r} is not one of {', '.join(TIMEFRAMES)}"
        )
    check_spec(deployment.broker)
    if not deployment.capital > 0:
        raise ConfigError(f"capital must be positive, got {deployment.capital}")
    unknown = sorted(set(deployment.params) - set(PARAMS))
    if unknown:
        raise ConfigError(
            f"unknown deployment parameter {', '.join(unknown)}; known: {', '.join(PARAMS)}"
        )
    share = deployment.params.get("participation")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
    ):
        raise ConfigError(
            f"participation is the share of a bar's volume an order may fill, in (0, 1]; "
            f"got {share!r}"
        )
    return deployment


def upsert_deployment(engine: Engine, deployment: Deployment) -> Deployment:
    """Create or update a deployment's definition (its halt state is left as it is), and write
    the default risk limits it trades under if they are not stored yet."""
    validate(deployment)
    with engine.begin() as conn:
        seed_default_limits(conn)
        conn.execute(
            text(
                "INSERT INTO config.strategies (deployment, strategy, model_name, model_alias, "
                "symbols, timeframe, capital, enabled, params, broker, broker_account) VALUES "
                "(:name, :strategy, :model_name, :model_alias, :symbols, :timeframe, :capital, "
                ":enabled, CAST(:params AS jsonb), :broker, :broker_account) "
                "ON CONFLICT (deployment) DO UPDATE SET broker = EXCLUDED.broker, "
                "broker_account = EXCLUDED.broker_account, "
                "strategy = EXCLUDED.strategy, model_name = EXCLUDED.model_name, "
                "model_alias = EXCLUDED.model_alias, symbols = EXCLUDED.symbols, "
                "timeframe = EXCLUDED.timeframe, capital = EXCLUDED.capital, "
                "enabled = EXCLUDED.enabled, params = EXCLUDED.params, updated_at = now()"
            ),
            {
                "name": deployment.name,
                "strategy": deployment.strategy,
                "model_name": deployment.model_name,
                "model_alias": deployment.model_alias,
                "symbols": list(deployment.symbols),
                "timeframe": deployment.timeframe,
                "capital": deployment.capital,
                "enabled": deployment.enabled,
                "params": json.dumps(deployment.params),
                "broker": deployment.broker,
                "broker_account": deployment.broker_account,
            },
        )
        return get_deployment(conn, deployment.name)


def halt(conn: Connection, name: str, reason: str, by: str) -> bool:
    """Halt deployment ``name``; return False when it was already halted (first reason kept).

    Through ``config.halt_deployment`` (migration 0015), the one way the runner's login may
    change a halt: it can set one, never clear one."""
    get_deployment(conn, name)
    changed = conn.execute(
        text("SELECT config.halt_deployment(:d, :r, :by)"), {"d": name, "r": reason, "by": by}
    ).scalar_one()
    return bool(changed)


def resume(conn: Connection, name: str, by: str) -> bool:
    """Clear deployment ``name``'s halt; return False when it was not halted."""
    get_deployment(conn, name)
    changed = conn.execute(
        text(
            "UPDATE config.strategies SET halted = false, halt_reason = NULL, halted_at = NULL, "
            "halted_by = NULL, updated_at = now() WHERE deployment = :d AND halted"
        ),
        {"d": name},
    ).rowcount
    return bool(changed)


def set_model_version(conn: Connection, name: str, version: str) -> None:
    """Remember the model version deployment ``name`` traded last."""
    conn.execute(
        text("UPDATE config.strategies SET last_model_version = :v WHERE deployment = :d"),
        {"d": name, "v": version},
    )


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold deployment ``name``'s advisory lock (a PostgreSQL session lock on a connection of
    its own) for the block: its trade cycle and its reconciliation never interleave, so a
    reconciliation never sees a fill the broker recorded and the ledger has not booked yet.
    A crashed holder's lock goes with its connection."""
    key = {"k": f"prism.deployment:{name}"}
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
            conn.commit()


def resume_deployment(engine: Engine, name: str, by: str) -> bool:
    """Clear ``name``'s halt and record who resumed it and what the halt was (a warning
    event); return False when it was not halted."""
    from prism.core.events import record_event

    with engine.begin() as conn:
        before = get_deployment(conn, name)
        if not resume(conn, name, by):
            return False
        record_event(
            conn,
            "deployment_resumed",
            "warning",
            "runner",
            f"{name} resumed by {by} (was halted by {before.halted_by}: {before.halt_reason})",
            {"deployment": name, "by": by},
        )
    return True


def change_limit(
    engine: Engine, key: str, value: float, by: str, deployment: str | None = None
) -> float:
    """Set one risk limit, globally or for ``deployment`` (which must exist), and record the
    change as a warning event naming ``by``; return the value it replaced."""
    from prism.core.events import record_event
    from prism.live import risk

    if deployment is not None:
        get_deployment(engine, deployment)
    scope = f" for {deployment}" if deployment else ""
    with engine.begin() as conn:
        before = risk.load_limits(conn, deployment)
        risk.set_limit(conn, key, value, by, deployment)
        previous = float(getattr(before, key))
        record_event(
            conn,
            "risk_limit_changed",
            "warning",
            "runner",
            f"risk limit {key}{scope} changed from {previous:g} to {value:g} by {by}",
            {"key": key, "previous": previous, "value": value, "by": by, "deployment": deployment},
        )
    return previous
