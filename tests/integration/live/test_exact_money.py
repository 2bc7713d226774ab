"""1m cycles in exact money: the real cycle (paper broker, ledger, sizing, risk checks, breaker)
run bar by bar over a week of synthetic minute bars with awkward float prices (five sessions,
1,950 cycles, ~130 ms of CPU each; ``PRISM_TEST_MONEY_SESSIONS`` sets another number).
At every bar the ledger's snapshot equity is its cash plus each position (summed from the fills)
times that bar's close, to the cent; the cash is the capital less every fill's cost; the equity
the decision sized with is the snapshot's; and cash never goes negative."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import text

from prism.data.bars import normalise
from prism.data.store import upsert_bars
from prism.live import cycle, deployments, steps
from tests.integration.runner_support import FixedSource, loosen_limits

SYMBOLS = ("SPX", "NDX")
SESSIONS = pd.bdate_range(
    "2018-12-03", periods=int(os.environ.get("PRISM_TEST_MONEY_SESSIONS", "5")), tz="UTC"
)
CENT = Decimal("0.01")


def _minute_bars() -> pd.DataFrame:
    """:data:`SESSIONS` regular sessions of 1m bars per symbol, a seeded random walk with
    prices of many decimals (what a float feed sends)."""
    rng = np.random.default_rng(15)
    times = pd.DatetimeIndex(
        [
            t
            for day in SESSIONS
            for t in pd.date_range(day + pd.Timedelta("14h30m"), periods=390, freq="1min")
        ]
    )
    frames = []
    for symbol, start in zip(SYMBOLS, (2_743.117, 6_811.93), strict=True):
        close = start * np.exp(np.cumsum(rng.normal(0, 4e-4, len(times))))
        frames.append(
            pd.DataFrame(
                {
                    "time": times,
                    "symbol": symbol,
                    "timeframe": "1m",
                    "open": np.r_[start, close[:-1]] * (1 + rng.normal(0, 1e-4, len(times))),
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "volume": 1e6,
                    "source": "test",
                }
            )
        )
    bars = pd.concat(frames, ignore_index=True)
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    return normalise(bars)


class SwingingSource(FixedSource):
    """A model whose target weights swing with every bar, so nearly every cycle trades."""

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        return steps.LiveStrategy("swing", self.model, version, 1, self.swing)

    @staticmethod
    def swing(bars: pd.DataFrame) -> pd.DataFrame:
        minute = (bars["time"].astype("int64") // 60_000_000).to_numpy()
        phase = np.where(bars["symbol"] == SYMBOLS[0], 0.0, 1.3)
        return bars[["time", "symbol"]].assign(weight=0.45 + 0.4 * np.sin(minute / 5.0 + phase))


def test_minute_cycles_keep_equity_exact_to_the_cent(engine, settings):
    bars = _minute_bars()
    upsert_bars(engine, bars)
    loosen_limits(engine, "exact money test")
    deployments.upsert_deployment(
        engine,
        deployments.Deployment(
            "minutes",
            SYMBOLS,
            "1m",
            1_000_003.37,
            params={"band": 0.001, "lot": 0.001, "allow_gaps": True},
        ),
    )
    source = SwingingSource()
    started = time.perf_counter()
    bar_times = sorted(bars["time"].unique())
    for as_of in bar_times:
        report = cycle.run_cycle(
            engine, settings, "minutes", as_of=pd.Timestamp(as_of).to_pydatetime(), source=source
        )
        assert report.outcome == "traded", report.reason
    elapsed = time.perf_counter() - started

    with engine.connect() as conn:
        snapshots = conn.execute(
            text(
                "SELECT time, cash, market_value, equity FROM trading.portfolio_snapshots "
                "WHERE deployment = 'minutes' ORDER BY time"
            )
        ).all()
        fills = conn.execute(
            text(
                "SELECT time, symbol, side, quantity, price, commission FROM trading.fills "
                "WHERE deployment = 'minutes' ORDER BY time, id"
            )
        ).all()
        decided = dict(
            conn.execute(
                text(
                    "SELECT DISTINCT time, signals ->> 'equity' FROM audit.decisions "
                    "WHERE deployment = 'minutes'"
                )
            ).all()
        )
    assert len(snapshots) == len(bar_times)
    assert len(fills) > 0.8 * len(bar_times) * len(SYMBOLS), "the model should trade most bars"

    closes = bars.pivot(index="time", columns="symbol", values="close")
    held = dict.fromkeys(SYMBOLS, Decimal(0))
    spent = Decimal(0)
    k = 0
    for when, cash, market_value, equity in snapshots:
        while k < len(fills) and fills[k].time <= when:
            fill = fills[k]
            sign = 1 if fill.side == "buy" else -1
            held[fill.symbol] += sign * fill.quantity
            spent += sign * fill.quantity * fill.price + fill.commission
            k += 1
        marks = {s: Decimal(repr(float(closes.at[pd.Timestamp(when), s]))) for s in SYMBOLS}
        value = sum((held[s] * marks[s] for s in SYMBOLS), Decimal(0))
        assert cash >= 0, f"cash went negative at {when}"
        assert abs(cash - (Decimal("1000003.37") - spent)) < CENT, when
        assert abs(cash + value - equity) < CENT, when
        assert abs(market_value - value) < CENT, when
        assert abs(Decimal(decided[when]) - equity) < CENT, when
    print(f"{len(bar_times)} cycles in {elapsed:.1f} s")
