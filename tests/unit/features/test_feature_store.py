"""The feature store's file layout and fingerprints, without a database."""

import pandas as pd
import pytest

from prism.core.errors import ConfigError
from prism.features import point_in_time
from prism.features.store import _fingerprints, _write_partition, partition_path, read


def _digests(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["symbol", "month", "digest"])


BASE = [
    ("NDX", "2018-11", "a"),
    ("NDX", "2018-12", "b"),
    ("SPX", "2018-11", "c"),
    ("SPX", "2018-12", "d"),
]


def _changed(rows: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    before = _fingerprints(_digests(BASE), ["NDX", "SPX"], "SPX", "code")
    after = _fingerprints(_digests(rows), ["NDX", "SPX"], "SPX", "code")
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def test_a_changed_month_invalidates_it_and_the_later_months_of_its_symbol():
    assert _changed([("NDX", "2018-11", "A"), *BASE[1:]]) == {
        ("NDX", "2018-11"),
        ("NDX", "2018-12"),
    }


def test_a_changed_benchmark_month_invalidates_that_month_of_every_symbol():
    assert _changed([*BASE[:3], ("SPX", "2018-12", "D")]) == {
        ("NDX", "2018-12"),
        ("SPX", "2018-12"),
    }


def test_new_code_invalidates_everything():
    before = _fingerprints(_digests(BASE), ["NDX"], "SPX", "code")
    after = _fingerprints(_digests(BASE), ["NDX"], "SPX", "new code")
    assert all(before[key] != after[key] for key in before)


def test_a_symbol_with_a_slash_is_one_folder_and_reads_back(tmp_path):
    values = pd.DataFrame(
        {
            "time": pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True).astype(
                "datetime64[us, UTC]"
            )
        }
    )
    values["symbol"] = "BTC/USDT"
    for name in point_in_time.NAMES:
        values[name] = [1.0, float("nan")]
    path = partition_path(tmp_path, "1h", "BTC/USDT", "2024-01")
    _write_partition(path, values, "fingerprint")

    stored = read(["BTC/USDT"], timeframe="1h", root=tmp_path)

    assert path.parent.parent.name == "symbol=BTC%2FUSDT"
    pd.testing.assert_frame_equal(stored, values[["time", "symbol", *point_in_time.NAMES]])


def test_unknown_columns_are_named():
    with pytest.raises(ConfigError, match="unknown feature"):
        read(columns=["ret_2"])
