"""A research notebook run through papermill (``prism.research.notebooks.run_notebook``) is one
MLflow run with its provenance, out-of-sample figures, checks and artifacts, and running it
again with the same parameters on the same data reproduces its metrics and data hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from prism.core.settings import project_root
from prism.data.sources import ArchBarSource
from prism.data.store import ingest, read_bars
from prism.research.notebooks import run_notebook
from prism.research.tracking import configure, data_hash
from prism.strategies import SmaCrossover

NOTEBOOK = project_root() / "notebooks" / "02_backtest_strategy.ipynb"
PARAMETERS = {
    "fast": "5",
    "slow": "20",
    "start": "2014-01-01",
    "end": "2016-12-31",
    "oos_fraction": "0.25",
    "parity_bars": "5",
}
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def two_runs(settings, migrated_engine):
    """The same notebook and parameters run twice on the bundled bars."""
    ingest(migrated_engine, ArchBarSource())
    first = run_notebook(settings, NOTEBOOK, PARAMETERS, progress=False)
    second = run_notebook(settings, NOTEBOOK, PARAMETERS, progress=False)
    configure(settings)
    client = MlflowClient()
    return client.get_run(first.run_id), client.get_run(second.run_id)


@pytest.fixture(scope="module")
def bars(migrated_engine, two_runs):
    return read_bars(migrated_engine, ["SPX", "NDX"], "2014-01-01", "2016-12-31")


def test_running_a_notebook_again_reproduces_its_metrics_and_data_hash(two_runs):
    first, second = two_runs

    assert first.info.run_id != second.info.run_id
    assert first.data.metrics == second.data.metrics
    assert first.data.tags["prism.data_hash"] == second.data.tags["prism.data_hash"]


def test_a_run_is_tagged_with_its_notebook_code_data_and_checks(two_runs, bars):
    run, _ = two_runs
    tags = run.data.tags

    assert mlflow.get_experiment(run.info.experiment_id).name == "02_backtest_strategy"
    assert run.info.status == "FINISHED"
    assert tags["prism.notebook"] == "notebooks/02_backtest_strategy.ipynb"
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert tags["prism.version"] == "0.1.0"
    assert tags["prism.data_hash"] == data_hash(bars)
    assert tags["prism.data_start"] == bars["time"].min().isoformat()
    assert tags["prism.data_end"] == bars["time"].max().isoformat()
    assert tags["prism.lookahead_check"] == tags["prism.parity_check"] == "passed"
    assert (tags["prism.allow_gaps"], tags["prism.data_gate"]) == ("false", "passed")
    assert run.data.params["notebook.fast"] == "5"


def test_a_run_logs_whole_and_out_of_sample_metrics_and_its_trials(two_runs, bars):
    metrics = two_runs[0].data.metrics
    times = bars["time"].drop_duplicates().sort_values()
    oos_bars = len(times) - round(len(times) * 0.75)

    assert metrics["trials"] == 1
    assert metrics["oos_n_periods"] == oos_bars
    assert metrics["is_n_periods"] + metrics["oos_n_periods"] == len(times) - 1
    assert metrics["is_n_trades"] + metrics["oos_n_trades"] == metrics["n_trades"]
    for name in ("sharpe", "max_drawdown", "oos_sharpe", "oos_max_drawdown", "oos_skew"):
        assert pd.notna(metrics[name])
    assert metrics["oos_kurtosis"] > 1


def test_a_run_holds_the_executed_notebook_its_html_tear_sheet_equity_and_trades(
    two_runs, tmp_path
):
    run = two_runs[0]
    client = MlflowClient()
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    notebook = {Path(a.path).suffix for a in client.list_artifacts(run.info.run_id, "notebook")}

    assert {"equity_curve.png", "tear_sheet.html", "trades.parquet", "equity.parquet"} <= top
    assert notebook == {".ipynb", ".html"}
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        assert "tear_sheet.png" in top
    folder = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="trades.parquet", dst_path=str(tmp_path)
    )
    trades = pd.read_parquet(folder)
    assert len(trades) == run.data.metrics["n_trades"]
    assert {"time", "symbol", "side", "quantity", "price"} <= set(trades.columns)


def test_the_logged_model_has_a_signature_and_predicts_the_strategys_weights(two_runs, bars):
    uri = two_runs[0].data.tags["prism.model_uri"]

    info = mlflow.models.get_model_info(uri)
    model = mlflow.pyfunc.load_model(uri)
    weights = model.predict(bars)

    assert info.signature is not None and info.saved_input_example_info is not None
    expected = SmaCrossover(fast=5, slow=20).target_weights(bars)
    pd.testing.assert_frame_equal(weights.reset_index(drop=True), expected)
