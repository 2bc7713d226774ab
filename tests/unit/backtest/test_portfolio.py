import math

from hypothesis import given
from hypothesis import strategies as st

from prism.backtest.portfolio import RebalanceRule, commission, fill_price, order_quantities

weights = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
prices = st.floats(min_value=1.0, max_value=10_000.0, allow_nan=False)
quantities = st.floats(min_value=-1_000.0, max_value=1_000.0, allow_nan=False)


@given(target=weights, held=quantities, price=prices)
def test_after_trading_the_weight_is_within_the_band_or_the_position_was_left_alone(
    target, held, price
):
    rule = RebalanceRule(band=0.02, lot=0.0001, cost_rate=0.0)
    equity = 1_000_000.0

    orders = order_quantities({"X": target}, {"X": held}, {"X": price}, equity, rule)

    new_held = held + orders.get("X", 0.0)
    gap = abs(target * equity - new_held * price)
    if "X" in orders:
        assert gap <= rule.lot * price + 1e-6 or target == 0.0
    else:
        assert gap <= rule.band * equity or held == 0.0 == target


@given(held=quantities.filter(lambda q: q != 0), price=prices)
def test_a_zero_target_always_closes_the_whole_position(held, price):
    orders = order_quantities({"X": 0.0}, {"X": held}, {"X": price}, 1e6, RebalanceRule())

    assert orders == {"X": -held}


def test_a_symbol_without_a_price_gets_no_order():
    orders = order_quantities(
        {"X": 0.5, "Y": 0.5}, {}, {"X": 100.0, "Y": math.nan}, 1e6, RebalanceRule()
    )

    assert set(orders) == {"X"}


def test_a_held_symbol_missing_from_the_targets_is_closed():
    orders = order_quantities(
        {"X": 0.5}, {"X": 10.0, "Y": 3.0}, {"X": 1.0, "Y": 2.0}, 100.0, RebalanceRule(band=0.5)
    )

    assert orders == {"Y": -3.0}


def test_an_all_in_buy_reserves_cash_for_its_costs():
    rule = RebalanceRule(band=0.0, lot=1e-9, cost_rate=0.0003)

    quantity = order_quantities({"X": 1.0}, {}, {"X": 100.0}, 10_000.0, rule)["X"]

    spent = quantity * 100.0 * (1 + 0.0003)
    assert spent <= 10_000.0
    assert spent == __import__("pytest").approx(10_000.0, rel=1e-9)


def test_quantities_round_toward_zero_to_whole_lots():
    orders = order_quantities({"X": 0.5}, {}, {"X": 3.0}, 100.0, RebalanceRule(band=0, lot=1.0))

    assert orders == {"X": 16.0}


def test_slippage_makes_buys_dearer_and_sells_cheaper_and_commission_is_on_notional():
    assert fill_price(100.0, 5, 10) == 100.1
    assert fill_price(100.0, -5, 10) == 99.9
    assert commission(-5, 100.0, 10) == 0.5
