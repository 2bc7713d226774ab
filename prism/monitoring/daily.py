"""The daily report's figures: one deployment's positions, P&L, risk and fills for one UTC day.

Positions are as of the end of the day, summed from the fills booked before it (so a report on
an earlier day shows that day's book, not today's) and valued at the last bar closed by then.
P&L is the change in equity between the last portfolio snapshot before the day and the last one
in it. Risk is the historical and parametric VaR and CVaR (:mod:`prism.backtest.metrics`) of the
snapshot-to-snapshot returns up to the end of the day.

Frames have UTC ``datetime64`` times and float64 money columns: they are for display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import Engine, text

from prism.backtest import metrics
from prism.core.errors import ConfigError

_TEXT_COLUMNS = (
    "symbol",
    "side",
    "client_order_id",
    "severity",
    "event_type",
    "component",
    "message",
)

MIN_RETURNS = 5
"""Fewest returns VaR and CVaR are estimated from; with fewer the report says so."""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the UTC start of ``day`` and of the next day."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def report_day(report_date: str | date | None) -> date:
    """Return ``report_date`` (ISO text or a date) as a date; None means today (UTC)."""
    if report_date is None or report_date == "":
        return datetime.now(UTC).date()
    if isinstance(report_date, date):
        return report_date
    return date.fromisoformat(str(report_date))


def report_deployments(engine: Engine, deployment: str | None) -> list[str]:
    """Return ``[deployment]`` if given and known, every deployment if None, else raise.

    (The same list as :func:`prism.monitoring.reporting.deployments`, queried here so the report's
    kernel does not import MLflow, which that module needs and which costs seconds to load.)
    """
    with engine.connect() as conn:
        known = list(
            conn.execute(text("SELECT deployment FROM trading.accounts ORDER BY 1")).scalars()
        )
    if deployment is None or deployment == "":
        return known
    if deployment not in known:
        raise ConfigError(
            f"no trading account {deployment!r}; known: {', '.join(known) or 'none yet'}"
        )
    return [deployment]


def _frame(engine: Engine, query: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(query), conn, params=params)
    for column in frame.columns:
        if (
            column not in ("symbol", "side", "client_order_id", "status")
            and frame[column].dtype == object
        ):
            frame[column] = pd.to_numeric(frame[column])
    return frame


def fills_on(engine: Engine, deployment: str, day: date) -> pd.DataFrame:
    """Return the day's fills, oldest first: time, symbol, side, quantity, price, notional,
    commission, client_order_id."""
    start, end = day_bounds(day)
    return _frame(
        engine,
        "SELECT f.time, f.symbol, f.side, f.quantity, f.price, f.quantity * f.price AS notional, "
        "f.commission, o.client_order_id FROM trading.fills f JOIN trading.orders o "
        "ON o.id = f.order_id WHERE f.deployment = :d AND f.time >= :start AND f.time < :end "
        "ORDER BY f.time, f.id",
        d=deployment,
        start=start,
        end=end,
    )


def positions_at(engine: Engine, deployment: str, day: date) -> pd.DataFrame:
    """Return the positions held at the end of ``day``: symbol, quantity, last_price (close of
    the symbol's last bar by then), market_value, weight (of the day's closing equity)."""
    _, end = day_bounds(day)
    frame = _frame(
        engine,
        "SELECT f.symbol, sum(CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END) "
        "AS quantity, (SELECT b.close FROM market_data.ohlcv b WHERE b.symbol = f.symbol "
        "AND b.time < :end ORDER BY b.time DESC LIMIT 1) AS last_price "
        "FROM trading.fills f WHERE f.deployment = :d AND f.time < :end GROUP BY f.symbol "
        "HAVING sum(CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END) <> 0 "
        "ORDER BY f.symbol",
        d=deployment,
        end=end,
    )
    frame["market_value"] = frame["quantity"] * frame["last_price"]
    closing = pnl_on(engine, deployment, day).equity_end
    frame["weight"] = frame["market_value"] / closing if closing else math.nan
    return frame


def equity_until(engine: Engine, deployment: str, day: date) -> pd.DataFrame:
    """Return the portfolio snapshots up to the end of ``day``: time, cash, market_value,
    equity, gross_exposure, net_exposure."""
    _, end = day_bounds(day)
    return _frame(
        engine,
        "SELECT time, cash, market_value, equity, gross_exposure, net_exposure "
        "FROM trading.portfolio_snapshots WHERE deployment = :d AND time < :end ORDER BY time",
        d=deployment,
        end=end,
    )


def events_on(engine: Engine, day: date, deployment: str | None = None) -> pd.DataFrame:
    """Return the day's warnings, errors and critical system events (alerts, risk breaches,
    halts, failed flows), oldest first: time, severity, event_type, component, message. With
    ``deployment``, only its own events and those naming no deployment."""
    start, end = day_bounds(day)
    return _frame(
        engine,
        "SELECT time, CAST(severity AS text) AS severity, event_type, component, message "
        "FROM audit.system_events WHERE time >= :start AND time < :end "
        "AND severity >= CAST('warning' AS audit.event_severity) "
        "AND (CAST(:d AS text) IS NULL OR metadata->>'deployment' = :d "
        "     OR NOT metadata ? 'deployment') ORDER BY time, id",
        start=start,
        end=end,
        d=deployment,
    )


@dataclass(frozen=True)
class DayPnl:
    """A deployment's P&L over one day."""

    equity_start: float
    equity_end: float
    pnl: float
    pnl_pct: float
    commission: float
    n_fills: int
    traded_notional: float

    def as_frame(self) -> pd.DataFrame:
        """Return the figures as a one-column table of text for display (money to the cent,
        the return in percent)."""
        shown = {name: _shown(name, value) for name, value in self.__dict__.items()}
        return pd.DataFrame({"value": shown}).rename_axis("figure")


def _shown(name: str, value: float) -> str:
    if name == "pnl_pct":
        return f"{value:+.2%}"
    return str(value) if isinstance(value, int) else f"{value:,.2f}"


def pnl_on(engine: Engine, deployment: str, day: date) -> DayPnl:
    """Return the day's P&L: closing equity against the last equity before the day (the
    initial capital if there is none); a day without a snapshot keeps the previous equity."""
    start, end = day_bounds(day)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.initial_capital, "
                "(SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                " AND time < :start ORDER BY time DESC LIMIT 1) AS before, "
                "(SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                " AND time < :end ORDER BY time DESC LIMIT 1) AS closing, "
                "(SELECT coalesce(sum(commission), 0) FROM trading.fills WHERE deployment = :d "
                " AND time >= :start AND time < :end) AS commission, "
                "(SELECT count(*) FROM trading.fills WHERE deployment = :d "
                " AND time >= :start AND time < :end) AS n_fills, "
                "(SELECT coalesce(sum(quantity * price), 0) FROM trading.fills "
                " WHERE deployment = :d AND time >= :start AND time < :end) AS notional "
                "FROM trading.accounts a WHERE a.deployment = :d"
            ),
            {"d": deployment, "start": start, "end": end},
        ).one()
    opening = float(row.before if row.before is not None else row.initial_capital)
    closing = float(row.closing) if row.closing is not None else opening
    return DayPnl(
        equity_start=opening,
        equity_end=closing,
        pnl=closing - opening,
        pnl_pct=(closing / opening - 1.0) if opening else math.nan,
        commission=float(row.commission),
        n_fills=int(row.n_fills),
        traded_notional=float(row.notional),
    )


def drift_until(engine: Engine, settings: Any, deployment: str, day: date) -> tuple[Any, str]:
    """Return the deployment's live-against-backtest drift (:class:`prism.live.drift.DriftReport`)
    over its live history up to the end of ``day``, or None and why it cannot be measured."""
    # Imported here: drift pulls in MLflow for model versions; the report kernel must stay light.
    from prism.live.drift import drift_or_reason

    _, end = day_bounds(day)
    return drift_or_reason(engine, settings, deployment, end=end - timedelta(microseconds=1))


def risk_of(equity: pd.Series, cutoff: float = 0.05) -> pd.DataFrame | None:
    """Return VaR and CVaR (historical and parametric, one-period returns) of ``equity`` at
    ``cutoff``, or None when it has fewer than :data:`MIN_RETURNS` returns."""
    if len(equity) - 1 < MIN_RETURNS:
        return None
    figures = {
        "historical VaR": metrics.value_at_risk(equity, cutoff),
        "historical CVaR": metrics.conditional_value_at_risk(equity, cutoff),
        "parametric VaR": metrics.parametric_value_at_risk(equity, cutoff),
        "parametric CVaR": metrics.parametric_conditional_value_at_risk(equity, cutoff),
    }
    return pd.DataFrame(
        {"return": figures, "amount": {k: v * float(equity.iloc[-1]) for k, v in figures.items()}}
    ).rename_axis(f"{1 - cutoff:.0%} one-period")


def positions_figure(positions: pd.DataFrame, title: str) -> go.Figure:
    """Return a bar chart of the positions' market values (``positions_at``'s frame)."""
    figure = go.Figure(
        go.Bar(
            x=positions["symbol"],
            y=positions["market_value"],
            text=[f"{q:g}" for q in positions["quantity"]],
            hovertemplate="%{x}: %{y:,.2f} (%{text} held)<extra></extra>",
        )
    )
    figure.update_layout(title=title, yaxis_title="market value", height=320)
    return figure


def equity_figure(equity: pd.DataFrame, day: date, title: str) -> go.Figure:
    """Return the equity curve (``equity_until``'s frame) with ``day`` shaded."""
    start, end = day_bounds(day)
    figure = go.Figure(go.Scatter(x=equity["time"], y=equity["equity"], mode="lines+markers"))
    figure.add_vrect(x0=start, x1=end, fillcolor="LightSalmon", opacity=0.3, line_width=0)
    figure.update_layout(title=title, yaxis_title="equity", height=320)
    return figure
