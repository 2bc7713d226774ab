"""The daily report notebook executed by papermill on a real kernel against a ledger filled
through prism.ledger, and saved as HTML."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from sqlalchemy import text
from typer.testing import CliRunner

from prism import ledger
from prism.cli.app import app
from prism.core.errors import ConfigError
from prism.core.events import record_event
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.ledger import FillRow, OrderRow
from prism.monitoring import daily
from prism.monitoring.reports import run_daily_report
from prism.research.notebooks import NotebookFailed

DAY = date(2018, 6, 29)


def _at(day: int, hour: int = 14) -> datetime:
    return datetime(2018, 6, day, hour, tzinfo=UTC)


def _trade(engine, symbol: str, side: str, quantity: str, price: str, day: int) -> None:
    order = OrderRow(
        client_order_id=f"demo:{symbol}:201806{day - 1:02d}T000000",
        deployment="demo",
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        strategy="sma_crossover",
        model_name="prism-strategy",
        model_version="1",
        decided_at=_at(day - 1, 0),
        broker="paper",
    )
    fill = FillRow(
        fill_id=f"{order.client_order_id}/1",
        client_order_id=order.client_order_id,
        time=_at(day),
        quantity=Decimal(quantity),
        price=Decimal(price),
        commission=Decimal("1.50"),
    )
    with engine.begin() as conn:
        ledger.insert_order(conn, order, f"paper-{order.client_order_id}")
        ledger.apply_fill(conn, "demo", side, symbol, fill)


def _closes(engine, day: int) -> dict[str, Decimal]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT symbol, close FROM market_data.ohlcv WHERE timeframe = '1d' "
                "AND time::date = :d"
            ),
            {"d": date(2018, 6, day)},
        )
        return {symbol: Decimal(close) for symbol, close in rows}


class June2018(ArchBarSource):
    """The real SPX and NDX daily bars of June 2018 only (a small, quick ingest)."""

    def fetch(self):  # type: ignore[no-untyped-def]
        bars = super().fetch()
        return bars[(bars["time"] >= "2018-06-01") & (bars["time"] < "2018-07-01")]


@pytest.fixture
def traded(engine):
    """Two weeks of daily snapshots of a small book: 10 SPX bought on the 27th, 4 of them
    sold and 5 NDX bought on the 29th."""
    ingest(engine, June2018())
    ledger.ensure_account(engine, "demo", Decimal("100000"))
    trading_days = (15, 18, 19, 20, 21, 22, 25, 26, 27, 28, 29)
    trades = {
        27: [("SPX", "buy", "10", "2700.00")],
        29: [("NDX", "buy", "5", "7000.00"), ("SPX", "sell", "4", "2720.00")],
    }
    for day in trading_days:
        for trade in trades.get(day, []):
            _trade(engine, *trade, day)
        with engine.begin() as conn:
            ledger.record_snapshot(conn, "demo", _at(day, 21), _closes(engine, day))
    return engine


def test_the_report_shows_the_days_positions_pnl_risk_and_fills(traded, settings):
    record_event(traded, "risk_breach", "warning", "risk", "SPX order trimmed to 20% of equity")
    record_event(traded, "fill", "info", "live", "an info event the report leaves out")
    with traded.begin() as conn:
        conn.execute(text("UPDATE audit.system_events SET time = '2018-06-29 15:00+00'"))

    html_path = run_daily_report(settings, "2018-06-29", "demo")

    html = html_path.read_text()
    assert html_path == settings.home / "reports" / "daily_report-2018-06-29-demo.html"
    closes = _closes(traded, 29)
    # bought 10 SPX, sold 4: 6 held; 5 NDX bought; valued at the 29th's closes
    spx_value = 6 * closes["SPX"]
    ndx_value = 5 * closes["NDX"]
    for symbol, quantity, value in (("NDX", 5, ndx_value), ("SPX", 6, spx_value)):
        row = rf"<td>{symbol}</td>\s*<td>{quantity}\.0</td>\s*<td>[\d.]+</td>\s*<td>([\d.]+)</td>"
        found = re.search(row, html)
        assert found is not None, symbol
        assert found.group(1) == f"{value:.6f}"  # pandas shows six decimals
    # P&L of the day: the 29th's snapshot equity against the 28th's
    with traded.connect() as conn:
        before, closing = (
            conn.execute(
                text("SELECT equity FROM trading.portfolio_snapshots ORDER BY time DESC LIMIT 2")
            )
            .scalars()
            .all()[::-1]
        )
    assert f"demo: P&amp;L {float(closing - before):+,.2f}" in html
    assert "historical VaR" in html and "parametric CVaR" in html
    assert "2 fill(s)" in html
    assert "SPX order trimmed to 20% of equity" in html
    assert "an info event the report leaves out" not in html
    assert "plotly" in html
    assert "daily.positions_at" not in html  # code cells are hidden


def test_daily_figures_match_the_ledger_by_hand(traded):
    held = daily.positions_at(traded, "demo", DAY).set_index("symbol")["quantity"].to_dict()
    earlier = daily.positions_at(traded, "demo", date(2018, 6, 28))
    pnl = daily.pnl_on(traded, "demo", DAY)

    assert held == {"NDX": 5.0, "SPX": 6.0}
    assert earlier.set_index("symbol")["quantity"].to_dict() == {"SPX": 10.0}
    assert pnl.n_fills == 2 and pnl.commission == 3.0
    assert pnl.traded_notional == 5 * 7000.0 + 4 * 2720.0


def test_the_report_command_with_no_account_writes_a_report_that_says_what_to_do(engine, settings):
    result = CliRunner().invoke(app, ["report", "daily", "--date", "2018-06-29"])

    assert result.exit_code == 0, result.output
    written = Path(result.output.strip())
    assert written == settings.home / "reports" / "daily_report-2018-06-29-all.html"
    html = written.read_text()
    assert "No trading account exists yet" in html
    assert "prism runner serve" in html


def test_an_unknown_deployment_is_a_config_error_naming_the_known_ones(traded):
    with pytest.raises(ConfigError, match="no trading account 'nosuch'; known: demo"):
        daily.report_deployments(traded, "nosuch")


def test_a_failing_cell_is_named_in_the_error(engine, settings, tmp_path):
    broken = tmp_path / "broken.ipynb"
    nbformat.write(
        new_notebook(
            cells=[
                new_code_cell(
                    "report_date = None\ndeployment = None", metadata={"tags": ["parameters"]}
                ),
                new_code_cell("total = 1 + 1"),
                new_code_cell("positions = {}\npositions['SPX']"),
            ],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        ),
        broken,
    )

    with pytest.raises(NotebookFailed) as info:
        run_daily_report(settings, "2018-06-29", "demo", notebook=broken)

    message = str(info.value)
    assert "broken.ipynb failed in cell 4: KeyError: 'SPX' [positions = {}]" in message
    assert "daily_report-2018-06-29-demo.ipynb" in message
