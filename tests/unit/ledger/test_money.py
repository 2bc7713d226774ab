"""Exact money against the backtest's float rules: the same decisions, to float precision,
on random portfolios; and exact where floats are not."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from prism.backtest.portfolio import RebalanceRule, affordable, commission, fill_price
from prism.backtest.portfolio import order_quantities as float_quantities
from prism.ledger import money


def test_a_bar_price_becomes_money_once_by_its_shortest_repr():
    assert money.price(0.1 + 0.2) == Decimal("0.3")
    assert money.price(42_500.123456789) == Decimal("42500.123457")
    assert money.exact(0.05) == Decimal("0.05") != Decimal.from_float(0.05)


def test_sizing_and_fills_agree_with_the_backtests_float_rules():
    rng = np.random.default_rng(7)
    rule = RebalanceRule(band=0.01, lot=0.001, cost_rate=0.0015, cost_per_share=0.005)
    for _ in range(300):
        symbols = ["A", "B", "C"]
        prices = {s: float(np.round(rng.uniform(0.5, 500), 2)) for s in symbols}
        held = {s: float(np.round(rng.uniform(-50, 50), 3)) for s in symbols}
        weights = {s: float(np.round(rng.uniform(-0.5, 0.5), 4)) for s in symbols}
        equity = float(np.round(rng.uniform(1_000, 100_000), 2))
        expected = float_quantities(weights, held, prices, equity, rule)
        got = money.order_quantities(
            {s: money.exact(w) for s, w in weights.items()},
            {s: money.exact(q) for s, q in held.items()},
            {s: money.price(p) for s, p in prices.items()},
            money.exact(equity),
            band=Decimal("0.01"),
            lot=Decimal("0.001"),
            cost_rate=Decimal("0.0015"),
            cost_per_share=Decimal("0.005"),
        )
        assert got.keys() == expected.keys()
        for symbol, quantity in expected.items():
            assert float(got[symbol]) == pytest.approx(quantity, abs=1e-9)

        quantity, cash = float(np.round(rng.uniform(-100, 100), 3)), float(rng.uniform(0, 5_000))
        price = fill_price(prices["A"], quantity, 5.0)
        exact_price = money.fill_price(money.price(prices["A"]), money.exact(quantity), Decimal(5))
        assert float(exact_price) == pytest.approx(price, abs=1e-6)
        kept = affordable(quantity, price, cash, 10.0, 0.001)
        exact_kept = money.affordable(
            money.exact(quantity), exact_price, money.exact(cash), Decimal(10), Decimal("0.001")
        )
        assert float(exact_kept) == pytest.approx(kept, abs=0.001 + 1e-9)
        fee = commission(quantity, price, 10.0, 0.005)
        exact_fee = money.commission(
            money.exact(quantity), exact_price, Decimal(10), Decimal("0.005")
        )
        assert float(exact_fee) == pytest.approx(fee, abs=1e-5)


def test_cash_that_exactly_covers_a_buy_buys_all_of_it():
    # 3 units at 33.33 with 10 bps: 3 * 33.33 * 1.001 = 100.089990 exactly
    assert money.affordable(
        Decimal(3), Decimal("33.33"), Decimal("100.08999"), Decimal(10), Decimal(1)
    ) == Decimal(3)
    assert money.affordable(
        Decimal(3), Decimal("33.33"), Decimal("100.08998"), Decimal(10), Decimal(1)
    ) == Decimal(2)
    assert money.to_lot(Decimal("-7.9999"), Decimal("0.5")) == Decimal("-7.5")
