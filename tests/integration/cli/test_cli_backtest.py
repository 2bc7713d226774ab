import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.backtest.metrics import summary
from prism.cli.app import app
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars
from prism.strategies import SmaCrossover


@pytest.fixture
def stocked(engine):
    ingest(engine, ArchBarSource())
    return engine


def test_backtest_json_reports_the_same_figures_as_the_library(stocked):
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "sma_crossover",
            "--symbols",
            "SPX",
            "--param",
            "fast=20",
            "--param",
            "slow=100",
            "--end",
            "2015-12-31",
            "--commission-bps",
            "5",
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    reported = json.loads(result.output)
    bars = read_bars(stocked, ["SPX"], end="2015-12-31")
    expected = run_backtest(
        bars, SmaCrossover(fast=20, slow=100), BacktestConfig(commission_bps=5.0)
    )
    figures = summary(expected.equity, len(expected.trades))
    for key in (
        "total_return",
        "annual_return",
        "sharpe",
        "sortino",
        "max_drawdown",
        "final_equity",
    ):
        assert reported[key] == pytest.approx(figures[key], rel=1e-12)
    assert reported["trades"] == len(expected.trades)


def test_strategies_lists_the_built_in_and_the_research_strategies():
    result = CliRunner().invoke(app, ["strategies"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert "sma_crossover" in result.output and "fast, slow, allow_short=False" in result.output
    assert "time_series_momentum" in result.output


def test_a_malformed_param_is_refused_with_the_expected_form(stocked):
    result = CliRunner().invoke(app, ["backtest", "sma_crossover", "--param", "fast"])

    assert result.exit_code != 0
    assert "expected --param key=value, got 'fast'" in str(result.exception)


def test_sweep_writes_every_combination_and_names_the_best(stocked, tmp_path):
    out = tmp_path / "grid.csv"
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "sma_crossover",
            "--symbols",
            "SPX",
            "--grid",
            "fast=5..20:5",
            "--grid",
            "slow=20,50",
            "--where",
            "fast<slow",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table[["fast", "slow"]].values.tolist() == [
        [5, 20],
        [5, 50],
        [10, 20],
        [10, 50],
        [15, 20],
        [15, 50],
        [20, 50],
    ]
    bars = read_bars(stocked, ["SPX"])
    for row in table.itertuples():
        equity = run_backtest(
            bars, SmaCrossover(fast=row.fast, slow=row.slow), BacktestConfig()
        ).equity
        assert row.final_equity == pytest.approx(equity.iloc[-1], rel=1e-12)
    assert "best of 7 trials" in result.output
    assert "deflated Sharpe" in result.output


def test_backtest_reproduces_backtesting_pys_smacross_on_goog(engine, tmp_path):
    """backtesting.py's README example through ``prism backtest``: GOOG ingested from a CSV,
    the commission taken from PRISM_COMMISSION_BPS, the rest from the command's options."""
    import warnings

    from backtesting import Backtest
    from backtesting.test import GOOG

    from prism.backtest.metrics import round_trips
    from prism.data.files import FileBarSource
    from tests.unit.backtest.test_peers import SmaCross

    csv = tmp_path / "goog.csv"
    GOOG.rename_axis("time").reset_index().to_csv(csv, index=False)
    ingest(engine, FileBarSource(csv, symbol="GOOG", mapping={c: c.lower() for c in GOOG}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002).run()
    fills = tmp_path / "fills.csv"
    options = "--rebalance change --lot 1 --size-at fill --fill-at open --slippage-bps 0"
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "sma_crossover",
            "--symbols",
            "GOOG",
            *("--param", "fast=10", "--param", "slow=20"),
            *("--param", "allow_short=True", "--param", "on_cross=True"),
            *("--cash", "10000", *options.split(), "--leverage", "1", "--band", "0.05"),
            *("--allow-gaps", "--trades", str(fills), "--json"),
        ],
        env={"PRISM_COMMISSION_BPS": "20"},
    )

    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    assert reported["final_equity"] == pytest.approx(theirs["Equity Final [$]"], abs=0.005)
    trips = round_trips(pd.read_csv(fills, parse_dates=["time"]))
    trades = theirs["_trades"]
    assert len(trips) == len(trades) > 50
    assert trips["size"].tolist() == trades["Size"].tolist()
    assert trips["entry_time"].dt.date.tolist() == trades["EntryTime"].dt.date.tolist()
    assert trips["exit_time"].dt.date.tolist() == trades["ExitTime"].dt.date.tolist()
    assert trips["entry_price"].to_numpy() == pytest.approx(trades["EntryPrice"].to_numpy())
    assert trips["pnl"].to_numpy() == pytest.approx(trades["PnL"].to_numpy(), abs=0.005)
