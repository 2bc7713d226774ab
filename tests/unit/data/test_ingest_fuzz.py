"""Random bytes and randomly broken CSV files thrown at file ingestion: each ends either in a bar
frame that validates and quarantines cleanly, or in one Prism error naming the file, never in a
traceback of another kind."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prism.core.errors import PrismError
from prism.data.files import FileBarSource
from prism.data.store import quarantine_rows
from prism.data.validate import validate

HEADER = "time,open,high,low,close,volume"
GOOD_CELL = st.floats(min_value=0.01, max_value=1e6).map(lambda v: f"{v:.4f}")
BAD_CELL = st.one_of(
    st.sampled_from(
        [
            "-3",
            "0",
            "1e999",
            "-1e999",
            "nan",
            "inf",
            "",
            "ten",
            '"',
            '""',
            '"1,2"',
            "1,2",
            "2024-13-45",
            "\u00e9",
            "\r",
            "\n",
        ]
    ),
    st.text(max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
CELL = st.integers(0, 24).flatmap(lambda n: BAD_CELL if n == 0 else GOOD_CELL)
TIME = st.integers(0, 9).flatmap(
    lambda n: (
        st.sampled_from(["2024-01-15", "2018-13-45", "", "yesterday", "2024-01-02T10:00"])
        if n == 0
        else st.dates().map(lambda d: d.isoformat())
    )
)


@st.composite
def broken_csv(draw: st.DrawFn) -> bytes:
    """A bar CSV whose rows mostly hold good values, some broken: bad cells, bad times, rows
    with too few or too many fields, another header, another encoding."""
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        cells = [draw(TIME), *(draw(CELL) for _ in range(5))]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(1, 5))] if draw(st.booleans()) else [*cells, "1"]
        rows.append(",".join(cells))
    header = draw(st.sampled_from([HEADER, HEADER, HEADER, HEADER.upper(), "a,b"]))
    text = "\n".join([header, *rows])
    if draw(st.integers(0, 4)) == 0:
        return text.encode("latin-1", errors="replace")
    return text.encode("utf-8", errors="surrogatepass")


def load(data: bytes) -> None:
    """Read ``data`` as a CSV file of symbol X and, when it reads, validate it and build its
    quarantine rows; a refusal must be a PrismError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_bytes(data)
        try:
            bars = FileBarSource(path, symbol="X").fetch()
        except PrismError as err:
            assert str(path) in str(err) or path.name in str(err)
            assert "\n" not in str(err).strip()
            return
        checked = validate(bars, calendars={"X": "24/7"})
        assert len(checked.accepted) + len(checked.rejected) == len(bars)
        for row in quarantine_rows("csv", checked.rejected):
            json.loads(
                str(row["raw"]),
                parse_constant=lambda name: (_ for _ in ()).throw(
                    AssertionError(f"{name} in a quarantine payload")
                ),
            )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_load_or_are_refused_with_one_line(data: bytes) -> None:
    load(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_csv())
def test_broken_csv_files_load_or_are_refused_with_one_line(data: bytes) -> None:
    load(data)
