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
        ({"volume": -1.0}, "negative_volume"),
        ({"high": 10.2}, "high_below_body"),
        ({"low": 10.4}, "low_above_body"),
        ({"timeframe": "2d"}, "unknown_timeframe"),
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
