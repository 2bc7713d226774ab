"""File ingestion's refusals name the file and the exact line; overflowing values are rejected
as infinite; a daily bar on an exchange holiday is flagged for review."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prism.core.errors import ConfigError
from prism.data.files import FileBarSource
from prism.data.validate import validate

HEADER = "time,open,high,low,close,volume\n"


def refusal(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        FileBarSource(path, symbol="X").fetch()
    return str(err.value)


def test_an_unclosed_quote_is_reported_at_the_line_it_opens(tmp_path: Path) -> None:
    rows = (
        '2024-01-02,1,1,1,1,1\n2024-01-03,1,1,1,1,1\n2024-01-04,"1,1,1,1,1\n2024-01-05,1,1,1,1,1\n'
    )

    message = refusal(tmp_path / "quote.csv", (HEADER + rows).encode())

    assert "quote.csv: line 4:" in message and "never closed" in message


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (
            HEADER.encode()
            + "2024-01-02,1,1,1,1,1\n2024-01-03,caf\u00e9,1,1,1,1\n".encode("latin-1"),
            ("line 3", "0xe9", "UTF-8"),
        ),
        (b"PAR1\x00\x01\x02binary", ("line 1", "binary")),
    ],
)
def test_an_undecodable_file_is_one_line_naming_file_and_encoding(
    tmp_path: Path, data: bytes, named: tuple[str, ...]
) -> None:
    message = refusal(tmp_path / "odd.csv", data)

    assert "odd.csv" in message and "\n" not in message
    for word in named:
        assert word in message


def test_a_value_overflowing_float64_is_rejected_as_infinite(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "2024-01-02,1,1,1,1,1\n2024-01-03,1,1e999,1,1,1\n")

    checked = validate(FileBarSource(path, symbol="X").fetch())

    assert checked.rejected["rule"].tolist() == ["non_finite_value"]
    assert len(checked.accepted) == 1


def test_a_daily_bar_on_an_exchange_holiday_is_flagged_and_a_trading_day_is_not() -> None:
    import exchange_calendars

    days = pd.to_datetime(["2024-01-12", "2024-01-15", "2024-01-16"], utc=True)
    sessions = exchange_calendars.get_calendar("XNYS").sessions
    bars = pd.DataFrame(
        {
            "symbol": "X",
            "timeframe": "1d",
            "time": days,
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )

    review = validate(bars, calendars={"X": "XNYS"}).accepted["review"].tolist()

    expected = [None if d.tz_localize(None) in sessions else "holiday" for d in days]
    assert [r if r is None else "holiday" for r in review] == expected
    assert "2024-01-15" in review[1] and "XNYS" in review[1]
