"""Randomly broken CSV files ingested into real PostgreSQL: each either loads (its bars stored,
its bad rows quarantined) or is refused with one Prism error, and a refused file stores
nothing at all."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from prism.core.errors import PrismError
from prism.data.files import FileBarSource
from prism.data.store import ingest
from tests.unit.data.test_ingest_fuzz import broken_csv

COUNTS = (
    "SELECT (SELECT count(*) FROM market_data.ohlcv), "
    "(SELECT count(*) FROM market_data.quarantine), (SELECT count(*) FROM market_data.assets)"
)


def counts(engine: Engine) -> tuple[int, int, int]:
    """Return the rows of bars, quarantine and assets."""
    with engine.connect() as conn:
        bars, held, assets = conn.execute(text(COUNTS)).one()
    return int(bars), int(held), int(assets)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.one_of(broken_csv(), st.binary(max_size=200)))
def test_a_broken_file_loads_cleanly_or_stores_nothing(engine: Engine, data: bytes) -> None:
    before = counts(engine)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = ingest(engine, FileBarSource(path, symbol="X", calendar="24/7"))
        except PrismError as err:
            assert path.name in str(err)
            assert counts(engine) == before
            return
    bars, held, _ = counts(engine)
    assert bars == before[0] + report.inserted
    assert before[1] <= held <= before[1] + report.quarantined
    assert report.received == report.inserted + report.updated + report.unchanged + (
        report.quarantined
    )


def test_a_daily_bar_on_an_exchange_holiday_is_flagged_for_review(engine: Engine) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_text(
            "time,open,high,low,close,volume\n"
            "2024-01-12,10,11,9,10,100\n2024-01-15,10,11,9,10,100\n2024-01-16,10,11,9,10,100\n"
        )
        report = ingest(engine, FileBarSource(path, symbol="HOL", calendar="XNYS"))

    with engine.connect() as conn:
        flagged = conn.execute(
            text(
                "SELECT CAST(time AS date), review FROM market_data.ohlcv "
                "WHERE symbol = 'HOL' AND review IS NOT NULL"
            )
        ).all()
    assert report.flagged == 1
    assert [str(day) for day, _ in flagged] == ["2024-01-15"]
    assert "XNYS" in flagged[0][1]
