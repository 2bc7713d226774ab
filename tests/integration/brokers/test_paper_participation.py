"""Partial fills in the paper broker: with the deployment parameter ``participation`` an order
fills at most that share of its fill bar's volume (whole lots), the rest is cancelled through
the order state machine, and the next cycle trades toward the target again."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from prism.core.errors import ConfigError
from prism.live import cycle
from prism.live.replay import replay_times
from tests.integration.runner_support import SYMBOLS, FixedSource, deploy

PARTICIPATION = 2e-8
"""Of a bar's volume (SPX and NDX trade billions a day): some tens of units, under what half a
million of capital buys, so the cap binds on the opening orders."""
LOT = 1.0


def _run(engine, settings, name: str, bars: int = 60) -> None:
    for as_of in replay_times(engine, list(SYMBOLS), bars):
        cycle.run_cycle(engine, settings, name, as_of=as_of, source=FixedSource())


def _fills(engine, name: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT f.symbol, f.time, f.quantity, o.quantity AS ordered, o.status, "
                "o.decided_at, b.volume FROM trading.fills f "
                "JOIN trading.orders o ON o.id = f.order_id "
                "JOIN market_data.ohlcv b ON b.symbol = f.symbol AND b.timeframe = '1d' "
                "AND b.time = f.time WHERE f.deployment = :d ORDER BY f.time, f.symbol"
            ),
            {"d": name},
        ).all()


def test_fills_are_capped_at_the_bars_volume_share_and_the_rest_retraded(stocked, settings):
    deploy(stocked, "capped", participation=PARTICIPATION, lot=LOT)
    deploy(stocked, "free", lot=LOT)
    _run(stocked, settings, "capped")
    _run(stocked, settings, "free")

    capped = _fills(stocked, "capped")
    assert capped, "the window must trade"
    cut = []
    for row in capped:
        cap = math.floor(PARTICIPATION * float(row.volume) / LOT) * LOT
        assert float(row.quantity) <= cap, f"{row.symbol} {row.time}: {row.quantity} > {cap}"
        if row.quantity < row.ordered:
            assert float(row.quantity) == cap
            assert row.status == "cancelled"
            cut.append(row)
    assert cut, "the participation cap never bound; lower PARTICIPATION"

    later = {(row.symbol, row.decided_at) for row in capped}
    for row in cut:
        assert any(s == row.symbol and t > row.decided_at for s, t in later), (
            f"{row.symbol}: nothing traded after the cut order of {row.decided_at}"
        )
    free = _fills(stocked, "free")
    assert all(row.quantity == row.ordered for row in free if row.status == "filled")
    assert any(
        float(row.quantity) > math.floor(PARTICIPATION * float(row.volume)) for row in free
    ), "without the parameter, fills are not limited by volume"


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, "a lot"])
def test_a_participation_outside_zero_to_one_is_refused(engine, bad):
    with pytest.raises(ConfigError, match="participation"):
        deploy(engine, "bad", participation=bad)
