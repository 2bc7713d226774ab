"""Prices as integer units (:func:`prism.db.bars.price_units`): per group the fewest decimals
that represent every price, read back as the same double; finer prices rounded to 8 decimals
(checked against Python's correctly rounded ``round``); huge prices kept exact."""

from __future__ import annotations

import numpy as np
import pytest

from prism.core.errors import DataUnavailable
from prism.db.bars import EXACT, price_units


def decoded(units: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    return units / 10.0 ** decimals.astype(np.float64)[:, None]


def test_random_cent_prices_decode_bit_identical_with_two_decimals():
    rng = np.random.default_rng(7)
    prices = rng.integers(1, 10**9, (10_000, 4)) / 100

    units, decimals = price_units(prices, np.zeros(len(prices)))

    assert set(decimals) == {2}
    assert np.array_equal(decoded(units, decimals), prices)


def test_each_group_gets_the_fewest_decimals_that_represent_all_its_prices():
    prices = np.array([[100.0] * 4, [100.5] * 4, [7.0] * 4, [0.123456789] * 4, [12.25] * 4])
    groups = np.array(["A", "A", "B", "C", "C"])

    units, decimals = price_units(prices, groups)

    assert decimals.tolist() == [1, 1, 0, 8, 8]
    assert decoded(units, decimals)[:, 0].tolist() == [round(p, 8) for p in prices[:, 0]]


def test_a_price_off_by_float_round_off_keeps_its_decimal_value():
    price = 0.1 + 0.2  # 0.30000000000000004

    units, decimals = price_units(np.array([[price] * 4]), np.zeros(1))

    assert (units[0, 0], decimals[0]) == (3, 1)


def test_huge_prices_get_fewer_decimals_so_their_units_stay_exact():
    prices = np.array([[98765432109876.5] * 4, [123456789.125] * 4, [2.0**60] * 4])

    units, decimals = price_units(prices, np.arange(3))

    assert decimals.tolist() == [1, 3, 0]
    assert np.all(np.abs(units[:2]) <= EXACT)
    assert np.array_equal(decoded(units, decimals), prices)


def test_a_price_beyond_bigint_is_refused_with_a_clear_error():
    with pytest.raises(DataUnavailable, match="integer units"):
        price_units(np.array([[1e19] * 4]), np.zeros(1))
