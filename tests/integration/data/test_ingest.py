import pandas as pd
import pytest
from sqlalchemy import text

from prism.core.errors import DataUnavailable
from prism.data.bars import normalise
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars


def _table(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(
            text("SELECT * FROM market_data.ohlcv ORDER BY symbol, time"), conn
        )


def test_ingesting_the_bundled_data_twice_leaves_exactly_the_same_rows(engine):
    first = ingest(engine, ArchBarSource())
    rows = _table(engine)

    second = ingest(engine, ArchBarSource())

    assert (first.inserted, first.quarantined) == (10_062, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 10_062)
    pd.testing.assert_frame_equal(_table(engine), rows)


def test_stored_bars_read_back_equal_the_source(engine, bundled_bars):
    ingest(engine, ArchBarSource())

    stored = read_bars(engine, ["NDX", "SPX"])

    expected = bundled_bars.sort_values(["symbol", "time"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected)
    assert stored.groupby("symbol")["time"].min().dt.date.astype(str).tolist() == [
        "1999-01-04",
        "1999-01-04",
    ]


def test_a_corrected_bar_is_updated_in_place(engine):
    ingest(engine, ArchBarSource())

    class Corrected(ArchBarSource):
        def fetch(self) -> pd.DataFrame:
            bars = super().fetch()
            bars.loc[0, "close"] = bars.loc[0, "close"] + 0.01
            return bars

    report = ingest(engine, Corrected())

    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 10_061)


def test_bad_rows_go_to_quarantine_with_their_reason_and_good_rows_load(engine):
    class Dirty(ArchBarSource):
        def fetch(self) -> pd.DataFrame:
            bars = super().fetch().head(5).copy()
            bars.loc[1, "high"] = bars.loc[1, "low"] - 1
            bars.loc[3, "volume"] = -5
            return normalise(bars)

    report = ingest(engine, Dirty())

    assert (report.received, report.inserted, report.quarantined) == (5, 3, 2)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT rule, reason, raw->>'symbol', raw->>'time' FROM market_data.quarantine "
                "ORDER BY id"
            )
        ).all()
    assert [r[0] for r in rows] == ["high_below_body", "negative_volume"]
    assert rows[0][1] == "high is below open, close or low"
    assert rows[0][2] == "SPX" and rows[0][3].startswith("1999-01-05")


def test_reading_an_unknown_symbol_names_it_and_the_stored_ones(engine):
    ingest(engine, ArchBarSource())

    with pytest.raises(DataUnavailable, match=r"no 1d bars for AAPL .* \(stored: NDX, SPX\)"):
        read_bars(engine, ["SPX", "AAPL"])


def test_last_keeps_each_symbols_newest_bars_up_to_the_end(engine):
    ingest(engine, ArchBarSource())

    bars = read_bars(engine, ["SPX", "NDX"], end="2018-06-29", last=3)

    assert bars.groupby("symbol").size().tolist() == [3, 3]
    assert str(bars["time"].max().date()) == "2018-06-29"


def test_indicators_are_stored_once_per_bar_and_match_the_computed_values(engine):
    from prism.data.store import store_indicators
    from prism.features import indicators

    ingest(engine, ArchBarSource())
    values = indicators.compute(read_bars(engine, ["SPX", "NDX"]))

    written = store_indicators(engine, values, "1d")
    again = store_indicators(engine, values, "1d")

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM market_data.indicators")).scalar()
        rsi = conn.execute(
            text(
                "SELECT value FROM market_data.indicators WHERE symbol = 'SPX' "
                "AND indicator = 'rsi_14' ORDER BY time DESC LIMIT 1"
            )
        ).scalar()
    expected_rsi = values[values["symbol"] == "SPX"]["rsi_14"].iloc[-1]
    assert written == again == stored == int(values[list(indicators.INDICATORS)].count().sum())
    assert rsi == pytest.approx(expected_rsi, rel=1e-15)
