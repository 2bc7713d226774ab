"""Bad input gets one line naming the problem and the fix, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prism.strategies import available_strategies

ROOT = Path(__file__).resolve().parents[3]
PRISM = [sys.executable, "-c", "from prism.cli.app import main; main()"]
NOTEBOOK = "notebooks/02_backtest_strategy.ipynb"


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PRISM_MLRUNS_DIR": str(tmp_path / "mlruns"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        **env,
    }
    return subprocess.run(
        args, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def _assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_an_unknown_strategy_is_named_with_the_available_ones(settings, tmp_path):
    result = _run(
        [*PRISM, "research", "run", NOTEBOOK, "-p", "strategy", "momentum"],
        tmp_path,
    )

    _assert_clean_error(
        result,
        "unknown strategy 'momentum'",
        f"available strategies: {', '.join(sorted(available_strategies()))} ",
        "marked FAILED",
    )


def test_an_unknown_notebook_parameter_is_named_with_the_valid_ones(settings, tmp_path):
    result = _run([*PRISM, "research", "run", NOTEBOOK, "-p", "fsat", "10"], tmp_path)

    _assert_clean_error(
        result, "no parameter(s) fsat", "its parameters are strategy, strategy_params, fast"
    )


def test_a_malformed_sweep_axis_says_how_to_write_one(tmp_path):
    result = _run([*PRISM, "sweep", "sma_crossover", "--grid", "fast"], tmp_path)

    _assert_clean_error(result, "grid axis 'fast' is not name=v1,v2,... or name=start..stop")


def test_a_sweep_grid_too_large_or_filtered_empty_is_refused_before_any_backtest(tmp_path):
    huge = _run(
        [*PRISM, "sweep", "sma_crossover", "--grid", "fast=1..2000", "--grid", "slow=1..2000"],
        tmp_path,
    )
    grid = ["--grid", "fast=5,10", "--grid", "slow=20,30", "--where", "fast>slow"]
    empty = _run([*PRISM, "sweep", "sma_crossover", *grid], tmp_path)

    _assert_clean_error(huge, "has more than 1,000,000 combinations; narrow it")
    _assert_clean_error(empty, "the grid is empty: no combination passed the filters fast>slow")


def test_a_missing_option_is_named(settings, tmp_path):
    result = _run([*PRISM, "models", "promote"], tmp_path)

    _assert_clean_error(result, "Missing option '--run'")


def test_an_unreachable_database_names_the_masked_url_and_the_fix(tmp_path):
    result = _run(
        [*PRISM, "data", "ingest", "bundled"],
        tmp_path,
        PRISM_DATABASE_URL="postgresql://trader:hunter2@127.0.0.1:1/prism",
    )

    _assert_clean_error(
        result,
        "cannot connect to the database at postgresql://trader:***@",
        "unset it to use the embedded PostgreSQL server",
    )
    assert "hunter2" not in result.stderr


@pytest.mark.timeout(600)
def test_trading_without_a_champion_says_how_to_promote_one(engine, tmp_path):
    from prism.data.sources import ArchBarSource
    from prism.data.store import ingest

    ingest(engine, ArchBarSource())
    result = _run(
        [sys.executable, "-m", "runner", "1"], tmp_path, PREFECT_HOME=str(tmp_path / "prefect")
    )

    _assert_clean_error(
        result, "has no version aliased 'champion'", "prism models promote --run RUN_ID"
    )
