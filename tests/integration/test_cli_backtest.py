import json

import pytest
from typer.testing import CliRunner

from prism.backtest import BacktestConfig, run_backtest
from prism.cli import app
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars
from prism.metrics import summary
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
