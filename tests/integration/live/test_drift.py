"""Live against backtest drift on the real database: a real replay of the runner, then reality
perturbed in known ways, each cause's contribution checked against the amount introduced.

The amounts are computed independently of :mod:`prism.live.drift`: a fill's price or commission
changed by a known sum moves the cash by that sum; a missed cycle or a different signal is
measured by running the real runner twice (with and without the fault) and comparing the two
live P&Ls from their portfolio snapshots.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.cli.app import app
from prism.core.errors import ConfigError, DataUnavailable
from prism.core.settings import Settings
from prism.live import cycle, drift, risk, sources
from prism.live.replay import replay_times
from prism.strategies import SmaCrossover
from tests.integration.runner_support import (
    CAPITAL,
    COSTS,
    SYMBOLS,
    FixedSource,
    deploy,
    loosen_limits,
)

BARS = 100
CENT = 0.01


class DriftSource(FixedSource):
    """The strategy as the model ``drift-model`` (the registry is bypassed), its weight of one
    symbol at one bar replaced by ``override`` = (time, symbol, weight) if given."""

    def __init__(
        self, strategy: SmaCrossover, override: tuple[datetime, str, float] | None = None
    ) -> None:
        super().__init__(strategy, "drift-model")
        self.override = override

    def predict(self, bars: pd.DataFrame) -> pd.DataFrame:
        weights = super().predict(bars)
        if self.override is not None:
            time, symbol, weight = self.override
            hit = (weights["time"] == pd.Timestamp(time)) & (weights["symbol"] == symbol)
            weights.loc[hit, "weight"] = weight
        return weights


@pytest.fixture
def stocked(stocked: Engine) -> Engine:
    loosen_limits(stocked, "drift test")
    return stocked


@pytest.fixture
def costly(settings: Settings) -> Settings:
    return settings.model_copy(update=COSTS)


def _replay(
    engine: Engine,
    settings: Settings,
    name: str,
    times: list[datetime],
    source: DriftSource,
    skip: datetime | None = None,
) -> None:
    deploy(engine, name, model_name="drift-model")
    for as_of in times:
        if as_of != skip:
            cycle.run_cycle(engine, settings, name, as_of=as_of, source=source)


def _snapshot_pnl(engine: Engine, name: str) -> float:
    """The live P&L as the runner booked it: last snapshot equity less the capital."""
    with engine.connect() as conn:
        equity = conn.execute(
            text(
                "SELECT equity FROM trading.portfolio_snapshots WHERE deployment = :d "
                "ORDER BY time DESC LIMIT 1"
            ),
            {"d": name},
        ).scalar()
    return float(equity) - CAPITAL


def _traded_bar(engine: Engine, name: str, times: list[datetime]) -> datetime:
    """A bar in the middle of the window at which the runner decided an order."""
    with engine.connect() as conn:
        decided = conn.execute(
            text("SELECT DISTINCT decided_at FROM trading.orders WHERE deployment = :d"),
            {"d": name},
        ).scalars()
        middle = sorted(pd.Timestamp(t) for t in decided if times[20] < t < times[-20])
    assert middle, "the window must trade in its middle"
    return middle[0].to_pydatetime()


@pytest.fixture
def window(stocked: Engine) -> list[datetime]:
    return replay_times(stocked, list(SYMBOLS), BARS)


@pytest.fixture
def strategy() -> SmaCrossover:
    return SmaCrossover(fast=5, slow=20)


def test_an_unperturbed_replay_drifts_by_nothing_but_rounding(
    stocked, costly, window, strategy, bundled_bars
):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)

    report = drift.drift(stocked, costly, "base", source=source)

    assert (report.start, report.end, report.bars) == (window[0], window[-1], len(window))
    assert len(report.fills) > 10
    assert report.signals == 0.0 and report.signal_differences == []
    assert report.missed_cycles == [] and report.late_fills() == []
    assert report.live_pnl == pytest.approx(_snapshot_pnl(stocked, "base"), abs=CENT)
    config = BacktestConfig(capital=CAPITAL, **COSTS)
    backtest = run_backtest(
        bundled_bars[bundled_bars["time"] <= pd.Timestamp(window[-1])],
        strategy,
        config,
        start=pd.Timestamp(window[0]),
    )
    assert report.simulated_pnl == pytest.approx(backtest.equity.iloc[-1] - CAPITAL, abs=CENT)
    for cause in ("fill_prices", "fees", "timing", "residual"):
        assert abs(getattr(report, cause)) < 0.5, (cause, report.contributions())
    assert sum(report.contributions().values()) == pytest.approx(report.gap, abs=1e-6)


def _fill(engine: Engine, name: str, side: str, nth: int) -> tuple[int, float]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, quantity FROM trading.fills WHERE deployment = :d AND side = :s "
                "ORDER BY time, id"
            ),
            {"d": name, "s": side},
        ).all()
    return int(rows[nth].id), float(rows[nth].quantity)


def test_a_worse_fill_price_and_a_higher_fee_are_each_attributed_to_their_cause(
    stocked, costly, window, strategy
):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    before = drift.drift(stocked, costly, "base", source=source)
    buy, bought = _fill(stocked, "base", "buy", 1)
    sell, sold = _fill(stocked, "base", "sell", 0)
    worse_buy, worse_sell, extra_fee = Decimal("1.25"), Decimal("0.75"), Decimal("42.5")
    with stocked.begin() as conn:
        conn.execute(
            text("UPDATE trading.fills SET price = price + :p WHERE id = :i"),
            {"p": worse_buy, "i": buy},
        )
        conn.execute(
            text(
                "UPDATE trading.fills SET price = price - :p, commission = commission + :c "
                "WHERE id = :i"
            ),
            {"p": worse_sell, "c": extra_fee, "i": sell},
        )

    after = drift.drift(stocked, costly, "base", source=source)

    introduced_price = -bought * float(worse_buy) - sold * float(worse_sell)
    assert after.fill_prices - before.fill_prices == pytest.approx(introduced_price, abs=1e-6)
    assert after.fees - before.fees == pytest.approx(-float(extra_fee), abs=1e-6)
    assert after.live_pnl - before.live_pnl == pytest.approx(
        introduced_price - float(extra_fee), abs=1e-6
    )
    for cause in ("signals", "timing", "residual"):
        assert getattr(after, cause) == pytest.approx(getattr(before, cause), abs=1e-6)
    assert after.simulated_pnl == before.simulated_pnl


def test_a_missed_cycle_is_attributed_to_timing(stocked, costly, window, strategy):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    missed = _traded_bar(stocked, "base", window)
    _replay(stocked, costly, "gappy", window, source, skip=missed)
    introduced = _snapshot_pnl(stocked, "gappy") - _snapshot_pnl(stocked, "base")
    assert abs(introduced) > 1.0, "skipping a trading bar must change the live P&L"

    report = drift.drift(stocked, costly, "gappy", source=source)

    assert [m.time for m in report.missed_cycles] == [missed]
    assert report.missed_cycles[0].reason == "no cycle recorded for this bar"
    assert report.timing == pytest.approx(introduced, abs=1.0)
    assert report.signals == 0.0
    assert abs(report.residual) < 1.0


def test_a_signal_the_live_model_got_wrong_is_attributed_to_signals(
    stocked, costly, window, strategy
):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    bar = _traded_bar(stocked, "base", window)
    bars = replay_times(stocked, list(SYMBOLS), BARS)
    wrong_at = bars[bars.index(bar) + 3]
    with stocked.connect() as conn:
        modelled = float(
            conn.execute(
                text(
                    "SELECT signals->>'target_weight' FROM audit.decisions WHERE deployment = "
                    "'base' AND time = :t AND symbol = 'SPX'"
                ),
                {"t": wrong_at},
            ).scalar()
        )
    wrong = 0.0 if modelled else 0.5
    _replay(stocked, costly, "wrong", window, DriftSource(strategy, (wrong_at, "SPX", wrong)))
    introduced = _snapshot_pnl(stocked, "wrong") - _snapshot_pnl(stocked, "base")
    assert abs(introduced) > 1.0, "the wrong signal must change the live P&L"

    report = drift.drift(stocked, costly, "wrong", source=source)

    assert [(d.time, d.symbol, d.live_weight) for d in report.signal_differences] == [
        (wrong_at, "SPX", wrong)
    ]
    assert report.signal_differences[0].model_weight == pytest.approx(modelled, abs=1e-12)
    assert report.signals == pytest.approx(introduced, abs=1.0)
    assert report.missed_cycles == []
    assert abs(report.residual) < 1.0


def test_orders_cut_by_a_position_limit_are_attributed_to_risk(stocked, costly, window, strategy):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    with stocked.begin() as conn:
        risk.set_limit(conn, "max_position_pct", 0.3, "drift test: cap each position")
    _replay(stocked, costly, "capped", window, source)
    introduced = _snapshot_pnl(stocked, "capped") - _snapshot_pnl(stocked, "base")
    assert abs(introduced) > 100.0, "the cap must change the live P&L"

    report = drift.drift(stocked, costly, "capped", source=source)

    assert {r.outcome for r in report.risk_limited} == {"trim", "reject"}
    trims = [r for r in report.risk_limited if r.outcome == "trim"]
    assert all(0.29 < r.allowed_weight <= 0.3 + 1e-9 for r in trims)
    assert all(abs(r.target_weight) > 0.3 for r in report.risk_limited)
    assert report.signals == 0.0 and report.missed_cycles == []
    assert report.risk == pytest.approx(introduced, rel=0.05)
    assert abs(report.residual) < 0.05 * abs(introduced)


def test_a_window_narrower_than_the_live_history_starts_from_the_live_equity(
    stocked, costly, window, strategy
):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)

    report = drift.drift(stocked, costly, "base", start=window[30], end=window[70], source=source)

    with stocked.connect() as conn:
        equity = dict(
            conn.execute(
                text(
                    "SELECT time, equity FROM trading.portfolio_snapshots WHERE deployment = "
                    "'base' AND time IN (:a, :b)"
                ),
                {"a": window[30], "b": window[70]},
            ).all()
        )
    assert (report.start, report.end, report.bars) == (window[30], window[70], 41)
    assert report.equity_start == pytest.approx(float(equity[window[30]]), abs=CENT)
    assert report.live_pnl == pytest.approx(
        float(equity[window[70]]) - float(equity[window[30]]), abs=CENT
    )
    assert sum(report.contributions().values()) == pytest.approx(report.gap, abs=1e-6)


def test_drift_of_an_unknown_or_idle_deployment_is_refused_with_the_reason(stocked, costly):
    cli = CliRunner()
    unknown = cli.invoke(app, ["runner", "drift", "--deployment", "nobody"])
    assert isinstance(unknown.exception, ConfigError)
    assert "no deployment 'nobody'" in str(unknown.exception)

    deploy(stocked, "idle")
    idle = cli.invoke(app, ["runner", "drift", "--deployment", "idle", "--json"])
    assert isinstance(idle.exception, DataUnavailable)
    assert "has no live activity yet" in str(idle.exception)


def test_the_drift_command_prints_the_report_as_json(
    stocked, costly, window, strategy, monkeypatch
):
    for key, value in COSTS.items():
        monkeypatch.setenv(f"PRISM_{key.upper()}", str(value))
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    outside = CliRunner().invoke(
        app,
        ["runner", "drift", "--deployment", "base", "--start", "1990-01-01", "--end", "1990-02-01"],
    )
    assert isinstance(outside.exception, DataUnavailable)
    assert "no live activity of 'base'" in str(outside.exception)

    expected = drift.drift(stocked, costly, "base", source=source).as_dict()
    sources._REGISTRIES.clear()
    registry = sources.registry_source(costly, "drift-model")
    registry._loaded[("drift-model", "1")] = source.load("champion", "1")
    try:
        result = CliRunner().invoke(app, ["runner", "drift", "--deployment", "base", "--json"])
    finally:
        sources._REGISTRIES.clear()

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["live_pnl"] == pytest.approx(expected["live_pnl"], abs=1e-6)
    assert printed["gap"] == pytest.approx(expected["gap"], abs=1e-6)
    assert printed["bars"] == len(window)


def test_drift_compares_the_model_with_the_target_weights_in_trading_signals(
    stocked, costly, window, strategy
):
    source = DriftSource(strategy)
    _replay(stocked, costly, "base", window, source)
    bar = _traded_bar(stocked, "base", window)
    with stocked.begin() as conn:
        recorded = conn.execute(
            text(
                "UPDATE trading.signals SET target_weight = target_weight + 0.25 "
                "WHERE deployment = 'base' AND time = :t AND symbol = 'SPX' "
                "RETURNING target_weight"
            ),
            {"t": bar},
        ).scalar_one()

    report = drift.drift(stocked, costly, "base", source=source)

    assert [(d.time, d.symbol) for d in report.signal_differences] == [(bar, "SPX")]
    assert report.signal_differences[0].live_weight == pytest.approx(recorded, abs=1e-12)
    assert report.signal_differences[0].model_weight == pytest.approx(recorded - 0.25, abs=1e-9)
