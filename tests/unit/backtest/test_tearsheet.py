import shutil
import struct

import numpy as np
import pandas as pd
import pytest

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.backtest.tearsheet import (
    chart_times,
    monthly_returns,
    tear_sheet,
    write_tear_sheet,
    write_tear_sheet_png,
)
from prism.data.bars import close_panel
from prism.strategies import SmaCrossover


def test_monthly_returns_compound_back_to_the_total_return():
    times = pd.date_range("2020-01-01", "2021-12-31", freq="D", tz="UTC")
    equity = pd.Series(np.linspace(100.0, 150.0, len(times)), index=times)

    months = monthly_returns(equity)

    assert months.shape == (2, 12)
    assert np.prod(1 + months.to_numpy().ravel()) == pytest.approx(1.5)


def test_the_tear_sheet_page_holds_every_panel_and_the_trades(bundled_bars, tmp_path):
    result = run_backtest(bundled_bars, SmaCrossover(fast=10, slow=50), BacktestConfig())
    benchmark = close_panel(bundled_bars).mean(axis=1)

    figure = tear_sheet(result.equity, benchmark, result.trades, "sma")
    page = write_tear_sheet(figure, result.trades, tmp_path / "sheet.html").read_text()

    assert [t.type for t in figure.data] == ["scatter", "scatter", "scatter", "scatter", "heatmap"]
    for title in ("equity vs buy and hold", "drawdown %", "monthly returns %", "<h2>Trades</h2>"):
        assert title in page
    assert page.count("<tr") == len(result.trades) + 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="kaleido needs Debian's chromium")
def test_the_tear_sheet_renders_to_a_png_of_the_asked_size(bundled_bars, tmp_path):
    result = run_backtest(bundled_bars, SmaCrossover(fast=10, slow=50), BacktestConfig())
    figure = tear_sheet(result.equity, close_panel(bundled_bars).mean(axis=1), result.trades, "sma")

    path = write_tear_sheet_png(figure, tmp_path / "sheet.png")

    assert path is not None
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1000, 1200)


@pytest.mark.parametrize(
    ("freq", "zone", "length"),
    [("D", "UTC", 10), ("D", "America/New_York", 19), ("15min", "UTC", 19)],
)
def test_chart_times_are_short_strings_of_the_same_utc_instants(freq, zone, length):
    times = pd.date_range("2020-03-06 00:00", periods=200, freq=freq, tz=zone)

    shown = chart_times(times)

    assert (
        pd.DatetimeIndex(pd.to_datetime(shown)).tz_localize("UTC").equals(times.tz_convert("UTC"))
    )
    assert {len(text) for text in shown} == {length}
