"""Live against backtest: how far a deployment's live P&L drifted from what the backtester makes
of the same bars, and why.

The live window is re-simulated with the backtester (:func:`prism.backtest.engine.simulate`) on the
bars the runner read, from the live equity at the window's first bar, with the deployment's costs
and the model versions its decisions recorded. The gap between live and simulated P&L is then
split, by a chain of counterfactuals each differing from the last in one cause, into:

- ``signals``: the backtest fed the target weights the live cycles recorded in
  ``trading.signals`` (``audit.decisions.signals.target_weight`` for decisions older than that
  table's rows) instead of the weights the model computes on the
  same bars, minus the plain backtest;
- ``risk``: where the pre-trade risk checks trimmed or rejected an order, the backtest fed the
  weight the checks allowed (the position held plus the allowed quantity, at the decision's
  close and equity) instead of the target, minus the previous step;
- ``timing``: bars of the window with no trading decision (a missed or late cycle, a halt,
  stale data: the runner traded nothing on them) simulated as "no order", minus the previous
  step; plus, per live fill, the modelled price at the bar it filled minus the one at the bar
  after its decision (a late fill);
- ``fill_prices``: per live fill, its price against the backtest's fill model at the same bar
  (the open, worse by the slippage), times the signed quantity;
- ``fees``: per live fill, the commission paid against the backtest's commission model;
- ``residual``: the rest (kill-switch orders, rounding, positions held when a window starts
  later than the first cycle: the simulation starts flat).

The parts sum to the gap by construction. Live P&L is read from the ledger (the fills and the
closes they are marked at), which is what the portfolio snapshots are built from.

Longer than most modules (about 600 lines) on purpose: the chain of counterfactuals is one
computation over the same frames, read top to bottom beside the records it fills.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from prism.backtest.engine import BacktestConfig, simulate
from prism.backtest.portfolio import AccountConfig, cap_leverage
from prism.core.errors import DataUnavailable, PrismError
from prism.core.settings import Settings
from prism.data.bars import BarPanel
from prism.data.store import read_bars
from prism.live import deployments
from prism.live.cycle import registry_source
from prism.live.replay import bar_times

CAUSES = ("signals", "risk", "fill_prices", "fees", "timing", "residual")
"""The causes the gap is split into, in display order."""

SHARE_FLOOR = 0.01
"""A gap smaller than a cent has no meaningful shares (they would divide rounding noise)."""

WEIGHT_TOLERANCE = 1e-9
"""A live and a recomputed target weight closer than this are the same signal."""


@dataclass(frozen=True)
class SignalDifference:
    """A bar where the live target weight differed from the model's on the same bars."""

    time: datetime
    symbol: str
    live_weight: float
    model_weight: float


@dataclass(frozen=True)
class RiskLimited:
    """A decision whose order the risk checks trimmed or rejected: the weight the model asked
    for and the weight the checks let the position reach."""

    time: datetime
    symbol: str
    outcome: str
    target_weight: float
    allowed_weight: float


@dataclass(frozen=True)
class MissedCycle:
    """A bar of the window the runner did not trade on, and why (as its decisions say)."""

    time: datetime
    reason: str


@dataclass(frozen=True)
class FillDrift:
    """One live fill against the backtest's model of it.

    ``decision_price`` is the close at the decision; ``model_price`` the backtest's fill at the
    bar after the decision (its open, worse by the slippage); ``slippage_bps`` the fill's
    price against the decision price, in basis points, positive when worse.
    """

    time: datetime
    decided_at: datetime
    symbol: str
    side: str
    quantity: float
    price: float
    decision_price: float
    model_price: float
    slippage_bps: float
    commission: float
    model_commission: float
    late_bars: int


@dataclass(frozen=True)
class DriftReport:
    """Live against simulated P&L over a window, and the gap split by cause (see the module)."""

    deployment: str
    start: datetime
    end: datetime
    bars: int
    model: str
    equity_start: float
    live_pnl: float
    simulated_pnl: float
    signals: float
    risk: float
    fill_prices: float
    fees: float
    timing: float
    residual: float
    signal_differences: list[SignalDifference] = field(default_factory=list)
    risk_limited: list[RiskLimited] = field(default_factory=list)
    missed_cycles: list[MissedCycle] = field(default_factory=list)
    fills: list[FillDrift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """Return live minus simulated P&L."""
        return self.live_pnl - self.simulated_pnl

    def contributions(self) -> dict[str, float]:
        """Return each cause's part of the gap (they sum to it)."""
        return {cause: float(getattr(self, cause)) for cause in CAUSES}

    def contributions_frame(self) -> pd.DataFrame:
        """Return a display table indexed by line (live, simulated, gap, each cause): amount
        (float64) and share of the gap (float64, NaN for the first three and for a gap under
        :data:`SHARE_FLOOR`)."""
        amounts = {
            "live P&L": self.live_pnl,
            "simulated P&L": self.simulated_pnl,
            "gap": self.gap,
            **self.contributions(),
        }
        frame = pd.DataFrame({"amount": pd.Series(amounts, dtype="float64")})
        shares = abs(self.gap) >= SHARE_FLOOR
        share = [math.nan] * 3 + [
            v / self.gap if shares else math.nan for v in self.contributions().values()
        ]
        frame["share_of_gap"] = share
        return frame.rename_axis("line")

    def late_fills(self) -> list[FillDrift]:
        """Return the fills booked at a later bar than the one after their decision."""
        return [f for f in self.fills if f.late_bars > 0]

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values (times as ISO text)."""
        data = asdict(self)
        data["gap"] = self.gap
        data["late_fills"] = len(self.late_fills())
        return _isoformat(data)


def _isoformat(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _isoformat(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_isoformat(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class LiveRecord:
    """What the runner did in a window, as the database holds it.

    - ``decisions``: time (UTC), symbol, model_name, model_version, action, reasoning,
      target_weight (float64, NaN on a skip), risk_outcome (``trim`` / ``reject`` or None) and
      allowed_weight (float64: the weight the risk checks allowed, NaN where they passed);
    - ``fills``: time (UTC), decided_at (UTC), symbol, side, quantity (unsigned float64),
      price, commission (float64); every fill of the deployment up to the window's end.
    """

    initial_capital: float
    decisions: pd.DataFrame
    fills: pd.DataFrame


def _utc(moment: datetime | str | None) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def activity_span(engine: Engine, deployment: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Return the first and last bar a trading decision of ``deployment`` was recorded for,
    or None when it never decided anything."""
    with engine.connect() as conn:
        first, last = conn.execute(
            text(
                "SELECT min(time), max(time) FROM audit.decisions "
                "WHERE deployment = :d AND decision_type = 'rebalance'"
            ),
            {"d": deployment},
        ).one()
    if first is None:
        return None
    return pd.Timestamp(first), pd.Timestamp(last)


_ALLOWED_WEIGHT = (
    "CASE WHEN d.risk_check->>'outcome' IN ('trim', 'reject') THEN "
    "(CAST(d.signals->>'held' AS double precision) + CAST(d.risk_check->>'allowed' AS double "
    "precision)) * CAST(d.signals->>'close' AS double precision) "
    "/ nullif(CAST(d.signals->>'equity' AS double precision), 0) END"
)
"""The weight a trimmed or rejected order left the position at, from the decision's record."""


def read_live(engine: Engine, deployment: str, start: datetime, end: datetime) -> LiveRecord:
    """Return the deployment's decisions in [start, end] and its fills up to ``end``."""
    with engine.connect() as conn:
        capital = conn.execute(
            text("SELECT initial_capital FROM trading.accounts WHERE deployment = :d"),
            {"d": deployment},
        ).scalar()
        decisions = pd.read_sql_query(
            text(
                "SELECT d.time, d.symbol, d.model_name, d.model_version, d.action, d.reasoning, "
                "COALESCE(s.target_weight, "
                "CAST(d.signals->>'target_weight' AS double precision)) AS target_weight, "
                f"d.risk_check->>'outcome' AS risk_outcome, {_ALLOWED_WEIGHT} AS allowed_weight "
                "FROM audit.decisions d LEFT JOIN trading.signals s ON s.deployment = "
                "d.deployment AND s.symbol = d.symbol AND s.time = d.time "
                "WHERE d.deployment = :d AND d.decision_type = 'rebalance' "
                "AND d.time BETWEEN :start AND :end ORDER BY d.time, d.symbol"
            ),
            conn,
            params={"d": deployment, "start": start, "end": end},
        )
        fills = pd.read_sql_query(
            text(
                "SELECT f.time, o.decided_at, f.symbol, f.side, "
                "CAST(f.quantity AS double precision) AS quantity, "
                "CAST(f.price AS double precision) AS price, "
                "CAST(f.commission AS double precision) AS commission "
                "FROM trading.fills f JOIN trading.orders o ON o.id = f.order_id "
                "WHERE f.deployment = :d AND f.time <= :end ORDER BY f.time, f.id"
            ),
            conn,
            params={"d": deployment, "end": end},
        )
    for column in ("time", "decided_at"):
        if column in fills:
            fills[column] = pd.to_datetime(fills[column], utc=True)
    decisions["time"] = pd.to_datetime(decisions["time"], utc=True)
    return LiveRecord(float(capital) if capital is not None else math.nan, decisions, fills)


def drift(
    engine: Engine,
    settings: Settings,
    name: str,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    source: Any | None = None,
) -> DriftReport:
    """Return deployment ``name``'s drift over [start, end] (default: its whole live history),
    clipped to the bars it made decisions for.

    ``source`` is a :class:`prism.live.sources.StrategySource` (default: the MLflow registry, as the
    runner loads models); each model version the decisions recorded is loaded from it.
    Raises ConfigError for an unknown deployment and DataUnavailable when it did nothing in
    the window.
    """

    deployment = deployments.get_deployment(engine, name)
    span = activity_span(engine, name)
    if span is None:
        raise DataUnavailable(
            f"deployment {name!r} has no live activity yet (no decision in audit.decisions); "
            f"run it first (`prism runner replay --deployment {name} ...`)"
        )
    wanted_start, wanted_end = _utc(start), _utc(end)
    first = max(span[0], wanted_start) if wanted_start is not None else span[0]
    last = min(span[1], wanted_end) if wanted_end is not None else span[1]
    symbols = list(deployment.symbols)
    times = (
        bar_times(engine, symbols, deployment.timeframe, first.to_pydatetime(), last)
        if first <= last
        else []
    )
    live = read_live(engine, name, first.to_pydatetime(), last.to_pydatetime())
    if not times or live.decisions.empty:
        raise DataUnavailable(
            f"no live activity of {name!r} between {wanted_start or first} and "
            f"{wanted_end or last}; it decided from {span[0]} to {span[1]}"
        )
    versions = _versions(live.decisions)
    if source is None:
        model_name = next(iter(live.decisions["model_name"].dropna()), None)
        source = registry_source(settings, model_name or deployment.model_name)
    loaded = {v: source.load(deployment.model_alias, v) for v in versions}
    warmup = max((s.warmup for s in loaded.values()), default=0)
    bars = read_bars(
        engine, symbols, end=times[-1], timeframe=deployment.timeframe, last=len(times) + warmup + 1
    )
    weights = {v: s.predict(bars) for v, s in loaded.items()}
    names = live.decisions["model_name"].dropna().unique()
    model = f"{names[0] if len(names) else deployment.model_name} v{', '.join(versions)}"
    return attribute(
        name,
        bars,
        weights,
        live,
        deployment.live_config(settings),
        pd.Timestamp(times[0]),
        model,
    )


def _versions(decisions: pd.DataFrame) -> list[str]:
    versions = decisions["model_version"].dropna().astype(str).unique().tolist()
    if not versions:
        raise DataUnavailable(
            "the window's decisions record no model version; nothing to re-simulate"
        )
    return sorted(versions, key=lambda v: (len(v), v))


def attribute(
    deployment: str,
    bars: pd.DataFrame,
    weights: dict[str, pd.DataFrame],
    live: LiveRecord,
    account: AccountConfig,
    start: pd.Timestamp,
    model: str = "",
) -> DriftReport:
    """Split live against simulated P&L over the bars of ``bars`` from ``start`` (no I/O).

    ``bars`` is the bar frame the runner saw (warm-up history before ``start`` included, none
    after the window); ``weights`` maps each model version in ``live.decisions`` to its target
    weight frame (time, symbol, weight) on ``bars``; ``account`` gives the costs and sizing.
    """
    panel = BarPanel.from_bars(bars)
    first = panel.since(start)
    times = panel.times
    window = times[first:]
    symbols = list(panel.symbols)
    closes = pd.DataFrame(panel.close).ffill().to_numpy()

    model_weights = _model_weights(panel, weights, live.decisions, account.max_leverage)
    live_weights = model_weights.copy()
    decided = np.zeros(len(times), dtype=bool)
    differences: list[SignalDifference] = []
    table = live.decisions.dropna(subset=["target_weight"])
    rows = times.get_indexer(pd.DatetimeIndex(table["time"]))
    columns = pd.Index(symbols).get_indexer(pd.Index(table["symbol"]))
    for row, column, weight, time, symbol in zip(
        rows, columns, table["target_weight"], table["time"], table["symbol"], strict=True
    ):
        if row < first or column < 0:
            continue
        decided[row] = True
        live_weights[row, column] = weight
        modelled = float(model_weights[row, column])
        if abs(weight - modelled) > WEIGHT_TOLERANCE:
            differences.append(
                SignalDifference(pd.Timestamp(time).to_pydatetime(), str(symbol), weight, modelled)
            )

    allowed_weights = live_weights.copy()
    limited: list[RiskLimited] = []
    cut = live.decisions.dropna(subset=["allowed_weight"])
    rows = times.get_indexer(pd.DatetimeIndex(cut["time"]))
    columns = pd.Index(symbols).get_indexer(pd.Index(cut["symbol"]))
    for row, column, time, symbol, outcome, target, allowed in zip(
        rows,
        columns,
        cut["time"],
        cut["symbol"],
        cut["risk_outcome"],
        cut["target_weight"],
        cut["allowed_weight"],
        strict=True,
    ):
        if row < first or column < 0:
            continue
        allowed_weights[row, column] = allowed
        limited.append(
            RiskLimited(
                pd.Timestamp(time).to_pydatetime(),
                str(symbol),
                str(outcome),
                float(target),
                float(allowed),
            )
        )

    missed = [
        MissedCycle(times[r].to_pydatetime(), _skip_reason(live.decisions, times[r]))
        for r in range(first, len(times))
        if not decided[r]
    ]
    equity_start = _live_equity(live, panel, closes, first)
    config = BacktestConfig(
        **{f.name: getattr(account, f.name) for f in fields(AccountConfig)},
    )
    config = replace(config, capital=equity_start)
    plain = simulate(panel, model_weights, config, start)
    as_decided = simulate(panel, live_weights, config, start)
    as_allowed = simulate(panel, allowed_weights, config, start) if limited else as_decided
    held = allowed_weights.copy()
    as_run = as_allowed
    for cycle in missed:
        at = int(times.searchsorted(pd.Timestamp(cycle.time)))
        held[at] = _holding_weights(as_run, at - first, closes[at])
        as_run = simulate(panel, held, config, start)

    fills = _fill_drifts(live.fills, panel, closes, first, account)
    fill_prices = sum(-_signed(f) * (f.price - _at_fill(f, account, panel)) for f in fills)
    late = sum(-_signed(f) * (_at_fill(f, account, panel) - f.model_price) for f in fills)
    fees = sum(-(f.commission - f.model_commission) for f in fills)

    live_pnl = _live_equity(live, panel, closes, len(times) - 1) - equity_start
    simulated_pnl = float(plain.equity[-1]) - equity_start
    signals = float(as_decided.equity[-1] - plain.equity[-1])
    risk = float(as_allowed.equity[-1] - as_decided.equity[-1])
    timing = float(as_run.equity[-1] - as_allowed.equity[-1]) + late
    residual = live_pnl - simulated_pnl - signals - risk - fill_prices - fees - timing
    notes = []
    if first > 0 and _held_at(live.fills, times[first]):
        notes.append(
            "positions were held at the window's first bar; the simulation starts flat, so "
            "their P&L until the first rebalance is in the residual"
        )
    return DriftReport(
        deployment=deployment,
        start=window[0].to_pydatetime(),
        end=window[-1].to_pydatetime(),
        bars=len(window),
        model=model,
        equity_start=equity_start,
        live_pnl=live_pnl,
        simulated_pnl=simulated_pnl,
        signals=signals,
        risk=risk,
        fill_prices=float(fill_prices),
        fees=float(fees),
        timing=timing,
        residual=residual,
        signal_differences=differences,
        risk_limited=limited,
        missed_cycles=missed,
        fills=fills,
        notes=notes,
    )


def _model_weights(
    panel: BarPanel,
    weights: dict[str, pd.DataFrame],
    decisions: pd.DataFrame,
    max_leverage: float,
) -> np.ndarray:
    """Return the (time × symbol) weights, leverage-capped, of the version live used at each
    bar (the last one recorded before a bar without decisions)."""
    per_version = {v: panel.place(frame, "weight") for v, frame in weights.items()}
    recorded = decisions.dropna(subset=["model_version"]).groupby("time")["model_version"].first()
    version_at = recorded.astype(str).reindex(panel.times).ffill().bfill()
    out = np.full(panel.close.shape, np.nan)
    for version, grid in per_version.items():
        rows = (version_at == version).to_numpy()
        out[rows] = grid[rows]
    return cap_leverage(out, max_leverage)


def _skip_reason(decisions: pd.DataFrame, time: pd.Timestamp) -> str:
    at = decisions[decisions["time"] == time]
    if at.empty:
        return "no cycle recorded for this bar"
    return str(at["reasoning"].iloc[0])


def _holding_weights(run: Any, row: int, closes: np.ndarray) -> np.ndarray:
    """Return the weights that make the backtest trade nothing at ``row``: what it holds."""
    value = np.nan_to_num(run.held[row] * closes)
    return np.asarray(value / run.equity[row], dtype=np.float64)


def _signed(fill: FillDrift) -> float:
    return fill.quantity if fill.side == "buy" else -fill.quantity


def _slipped(price: float, side: str, slippage_bps: float) -> float:
    return price * (1.0 + (slippage_bps if side == "buy" else -slippage_bps) / 10_000.0)


def _at_fill(fill: FillDrift, account: AccountConfig, panel: BarPanel) -> float:
    """Return the backtest's fill price at the bar the live fill happened in."""
    row = int(panel.times.searchsorted(pd.Timestamp(fill.time), side="right")) - 1
    column = list(panel.symbols).index(fill.symbol)
    opening = float(panel.open[row, column]) if row >= 0 else math.nan
    if not math.isfinite(opening):
        return fill.model_price
    return _slipped(opening, fill.side, account.slippage_bps)


def _fill_drifts(
    fills: pd.DataFrame, panel: BarPanel, closes: np.ndarray, first: int, account: AccountConfig
) -> list[FillDrift]:
    """Return the window's fills (after its first bar) against the backtest's fill model."""
    out = []
    start = panel.times[first]
    symbols = list(panel.symbols)
    records: list[dict[Any, Any]] = fills[fills["time"] > start].to_dict("records")
    for fill in records:
        column = symbols.index(fill["symbol"])
        decided = int(panel.times.searchsorted(fill["decided_at"], side="right")) - 1
        expected = decided + 1
        actual = int(panel.times.searchsorted(fill["time"], side="right")) - 1
        opening = float(panel.open[min(expected, len(panel.times) - 1), column])
        model_price = _slipped(opening, fill["side"], account.slippage_bps)
        decision_price = float(closes[decided, column]) if decided >= 0 else math.nan
        sign = 1.0 if fill["side"] == "buy" else -1.0
        quantity = float(fill["quantity"])
        out.append(
            FillDrift(
                time=pd.Timestamp(fill["time"]).to_pydatetime(),
                decided_at=pd.Timestamp(fill["decided_at"]).to_pydatetime(),
                symbol=str(fill["symbol"]),
                side=str(fill["side"]),
                quantity=quantity,
                price=float(fill["price"]),
                decision_price=decision_price,
                model_price=model_price,
                slippage_bps=sign * (float(fill["price"]) / decision_price - 1.0) * 10_000.0,
                commission=float(fill["commission"]),
                model_commission=quantity * model_price * account.commission_bps / 10_000.0
                + quantity * account.commission_per_share,
                late_bars=max(actual - expected, 0),
            )
        )
    return out


def _held_at(fills: pd.DataFrame, time: pd.Timestamp) -> bool:
    before = fills[fills["time"] <= time]
    signed = np.where(before["side"] == "buy", before["quantity"], -before["quantity"])
    return bool((pd.Series(signed).groupby(before["symbol"].to_numpy()).sum().abs() > 0).any())


def _live_equity(live: LiveRecord, panel: BarPanel, closes: np.ndarray, row: int) -> float:
    """Return the live equity at ``row``'s close from the ledger: the initial capital less
    what fills up to then cost, plus the holdings marked at their last closes."""
    booked = live.fills[live.fills["time"] <= panel.times[row]]
    sign = np.where(booked["side"] == "buy", 1.0, -1.0)
    signed = sign * booked["quantity"].to_numpy(np.float64)
    cash = live.initial_capital - float(
        (signed * booked["price"].to_numpy(np.float64)).sum() + booked["commission"].sum()
    )
    held = pd.Series(signed).groupby(booked["symbol"].to_numpy()).sum()
    symbols = list(panel.symbols)
    value = 0.0
    for symbol, quantity in held.items():
        if quantity:
            value += float(quantity) * float(closes[row, symbols.index(str(symbol))])
    return cash + value


def drift_or_reason(
    engine: Engine,
    settings: Settings,
    name: str,
    end: datetime | None = None,
    source: Any | None = None,
) -> tuple[DriftReport | None, str]:
    """Return the drift of ``name``'s whole live history up to ``end`` and no reason, or None
    and why it cannot be measured (no activity, model not loadable): what reports and the
    dashboard show in place of the figures."""
    # Imported here: MLflow takes ~14 s to import; only a registry-backed report needs it.
    from mlflow.exceptions import MlflowException

    try:
        return drift(engine, settings, name, end=end, source=source), ""
    except (PrismError, MlflowException) as err:
        return None, str(err).splitlines()[0]
