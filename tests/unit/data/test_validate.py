import pandas as pd
import pytest

from prism.data.bars import normalise
from prism.data.validate import RULES, validate

GOOD = {
    "time": "2020-01-02",
    "symbol": "X",
    "timeframe": "1d",
    "open": 10.0,
    "high": 11.0,
    "low": 9.0,
    "close": 10.5,
    "volume": 100.0,
    "source": "test",
}


def _bars(*rows: dict) -> pd.DataFrame:
    return normalise(
        pd.DataFrame(
            [{**GOOD, "time": f"2020-01-{i + 2:02d}", **row} for i, row in enumerate(rows)]
        )
    )


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"close": None}, "missing_value"),
        ({"open": 0.0, "low": 0.0}, "non_positive_price"),
        ({"open": 1e19, "high": 1e19, "close": 1e19}, "price_too_large"),
        ({"open": 1e-9, "low": 1e-9}, "price_too_small"),
        ({"volume": -1.0}, "negative_volume"),
        ({"high": 10.2}, "high_below_body"),
        ({"low": 10.4}, "low_above_body"),
        ({"timeframe": "2d"}, "unknown_timeframe"),
        ({"time": "2999-01-01"}, "future_time"),
    ],
)
def test_a_row_breaking_a_rule_is_rejected_with_that_rule_and_its_reason(change, rule):
    checked = validate(_bars({}, change))

    assert len(checked.accepted) == 1
    assert checked.rejected["rule"].tolist() == [rule]
    assert checked.rejected["reason"].tolist() == [RULES[rule][1]]


def test_a_second_row_for_the_same_key_is_rejected_and_the_first_kept():
    bars = _bars({}, {})
    bars.loc[1, "time"] = bars.loc[0, "time"]
    bars.loc[1, "close"] = 10.9

    checked = validate(bars)

    assert checked.accepted["close"].tolist() == [10.5]
    assert checked.rejected["rule"].tolist() == ["duplicate_key"]


def test_the_bundled_real_data_passes_every_rule(bundled_bars):
    checked = validate(bundled_bars)

    assert checked.rejected.empty
    assert len(checked.accepted) == len(bundled_bars) == 10_062


def test_the_first_rule_broken_is_the_one_reported():
    checked = validate(_bars({"close": None, "volume": -1.0}))

    assert checked.rejected["rule"].tolist() == ["missing_value"]


def test_a_close_more_than_ten_percent_from_the_previous_is_accepted_but_flagged():
    checked = validate(_bars({}, {"close": 11.6, "high": 11.7}, {"close": 11.7, "high": 11.8}))

    assert checked.rejected.empty
    assert checked.flagged == 1
    assert checked.accepted["review"].tolist() == [
        None,
        "close moved +10.5% from the previous close 10.5",
        None,
    ]


def test_the_first_bar_of_a_batch_is_compared_with_the_previous_stored_close():
    previous = pd.DataFrame({"symbol": ["X"], "timeframe": ["1d"], "close": [12.0]})

    checked = validate(_bars({}, {}), previous)

    assert checked.accepted["review"].tolist() == [
        "close moved -12.5% from the previous close 12",
        None,
    ]


def test_a_move_of_exactly_ten_percent_is_not_flagged():
    checked = validate(_bars({"close": 10.0}, {"close": 11.0, "high": 11.0}))

    assert checked.flagged == 0
