"""The Overview page: each deployment's equity against a benchmark, P&L today and in total,
drawdown and exposure, the state of every deployment and its circuit breaker, the last alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from prism.monitoring import reporting
from prism.monitoring.prices import daily_closes
from prism.monitoring.sql import columns_of, read_frame

HALT_COLUMNS = ("halted", "halt_reason", "halted_at", "halted_by")
"""Added to ``config.strategies`` by migration 0006; read only when they exist."""


MAX_POINTS = 3000
"""Snapshots beyond this many are thinned to the last one per bucket of :data:`BUCKETS`."""
BUCKETS = {"5 minutes": 300, "1 hour": 3600, "1 day": 86400, "7 days": 604800}

_THINNED = """
SELECT * FROM (
    SELECT DISTINCT ON (date_bin(CAST(:width AS interval), s.time, TIMESTAMPTZ '2000-01-01'))
           s.time, s.cash, s.market_value, s.equity, s.gross_exposure, s.net_exposure,
           a.initial_capital
    FROM trading.portfolio_snapshots s JOIN trading.accounts a USING (deployment)
    WHERE s.deployment = :d
    ORDER BY date_bin(CAST(:width AS interval), s.time, TIMESTAMPTZ '2000-01-01'), s.time DESC
) thinned ORDER BY time
"""


def snapshots(engine: Engine, deployment: str, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Return :func:`prism.monitoring.reporting.equity_curve`'s frame, with a long history
    thinned to the last snapshot of each 5-minute, hourly, daily or weekly bucket (the smallest
    giving at most ``max_points`` rows), so a year of minute snapshots still draws at once.
    Drawdown is then that of the thinned curve."""
    span = read_frame(
        engine,
        "SELECT count(*) AS n, extract(epoch FROM max(time) - min(time)) AS seconds "
        "FROM trading.portfolio_snapshots WHERE deployment = :d",
        d=deployment,
    ).iloc[0]
    if int(span["n"]) <= max_points:
        return reporting.equity_curve(engine, deployment)
    width = next(
        (w for w, s in BUCKETS.items() if float(span["seconds"]) / s <= max_points), "7 days"
    )
    frame = read_frame(engine, _THINNED, d=deployment, width=width)
    frame["pnl"] = frame["equity"] - frame["initial_capital"]
    frame["pnl_pct"] = frame["pnl"] / frame["initial_capital"]
    frame["drawdown"] = frame["equity"] / frame["equity"].cummax() - 1.0
    return frame.drop(columns="initial_capital")


def equity_with_benchmark(
    engine: Engine, deployment: str, benchmark: str, raw: bool = False
) -> pd.DataFrame:
    """Return the deployment's snapshots (see :func:`snapshots`) as time (UTC), cash,
    market_value, equity, gross_exposure, net_exposure, pnl, pnl_pct, drawdown (<= 0), and
    ``benchmark``: the benchmark symbol's daily close as of each snapshot, scaled to start at
    the first equity (NaN when the symbol has no bars). ``raw`` reads the closes from 1m bars
    instead of the rollup (the benchmark's peer)."""
    curve = snapshots(engine, deployment)
    curve["time"] = pd.to_datetime(curve["time"], utc=True)
    curve["benchmark"] = float("nan")
    if curve.empty:
        return curve
    closes = daily_closes(engine, [benchmark], end=curve["time"].iloc[-1].to_pydatetime(), raw=raw)
    if benchmark not in closes:
        return curve
    series = closes[benchmark].dropna().rename("close").reset_index()
    joined = pd.merge_asof(curve[["time"]], series, on="time", direction="backward")
    first = joined["close"].dropna()
    if not first.empty:
        curve["benchmark"] = (joined["close"] / first.iloc[0] * curve["equity"].iloc[0]).values
    return curve


@dataclass(frozen=True)
class PortfolioSummary:
    """The headline figures of one deployment (fractions, not percentages)."""

    as_of: pd.Timestamp
    equity: float
    cash: float
    pnl_total: float
    pnl_total_pct: float
    pnl_today: float
    pnl_today_pct: float
    drawdown: float
    max_drawdown: float
    gross_exposure: float
    net_exposure: float
    benchmark_return: float


def summarize(curve: pd.DataFrame) -> PortfolioSummary | None:
    """Return the figures of :func:`equity_with_benchmark`'s frame, or None when it is empty.

    "Today" is the UTC date of the last snapshot: P&L against the last snapshot of an earlier
    date (against the initial capital when there is none). Exposures are fractions of equity.
    """
    if curve.empty:
        return None
    last = curve.iloc[-1]
    day = last["time"].normalize()
    before = curve[curve["time"] < day]
    equity = float(last["equity"])
    initial = equity - float(last["pnl"])
    opening = float(before["equity"].iloc[-1]) if not before.empty else initial
    bench = curve["benchmark"].dropna()
    return PortfolioSummary(
        as_of=last["time"],
        equity=equity,
        cash=float(last["cash"]),
        pnl_total=float(last["pnl"]),
        pnl_total_pct=float(last["pnl"]) / initial if initial else float("nan"),
        pnl_today=equity - opening,
        pnl_today_pct=equity / opening - 1.0 if opening else float("nan"),
        drawdown=float(last["drawdown"]),
        max_drawdown=float(curve["drawdown"].min()),
        gross_exposure=float(last["gross_exposure"]) / equity if equity else float("nan"),
        net_exposure=float(last["net_exposure"]) / equity if equity else float("nan"),
        benchmark_return=float(bench.iloc[-1] / bench.iloc[0] - 1.0)
        if len(bench)
        else float("nan"),
    )


def deployment_states(engine: Engine) -> pd.DataFrame:
    """Return one row per deployment (an account or a configured strategy): deployment,
    strategy, model_name, model_alias, timeframe, enabled, halted, halt_reason, halted_at,
    halted_by, last_snapshot (UTC), equity, and breaker: ``tripped`` (halted), ``armed``
    (trading) or ``disabled``."""
    present = columns_of(engine, "config.strategies")
    halt = ", ".join(f"s.{c}" if c in present else f"NULL AS {c}" for c in HALT_COLUMNS)
    frame = read_frame(
        engine,
        f"""
        SELECT d.deployment, s.strategy, s.model_name, s.model_alias, s.timeframe,
               coalesce(s.enabled, true) AS enabled, {halt},
               snap.time AS last_snapshot, snap.equity
        FROM (SELECT deployment FROM trading.accounts
              UNION SELECT deployment FROM config.strategies) d
        LEFT JOIN config.strategies s USING (deployment)
        LEFT JOIN LATERAL (
            SELECT time, equity FROM trading.portfolio_snapshots p
            WHERE p.deployment = d.deployment ORDER BY time DESC LIMIT 1) snap ON true
        ORDER BY d.deployment
        """,
    )
    frame["halted"] = frame["halted"].fillna(False).astype(bool)
    frame["breaker"] = [
        "tripped" if halted else ("armed" if enabled else "disabled")
        for halted, enabled in zip(frame["halted"], frame["enabled"], strict=True)
    ]
    return frame


def recent_alerts(engine: Engine, limit: int = 20, min_severity: str = "info") -> pd.DataFrame:
    """Return the newest ``limit`` system events at or above ``min_severity``: time (UTC),
    severity, component, event_type, message."""
    return read_frame(
        engine,
        "SELECT time, CAST(severity AS text) AS severity, component, event_type, message "
        "FROM audit.system_events WHERE severity >= CAST(:min AS audit.event_severity) "
        "ORDER BY time DESC, id DESC LIMIT :n",
        min=min_severity,
        n=limit,
    )
