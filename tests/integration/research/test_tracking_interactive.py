"""A notebook run in JupyterLab (no run id passed) is a run too, tagged with the notebook's path
when the kernel knows it, and the research data gate refuses gappy bars unless allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from prism.core.errors import DataUnavailable
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.research.data_gate import research_gate
from prism.research.tracking import notebook_run


def _finished(settings, name, monkeypatch, session):
    if session is None:
        monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    else:
        monkeypatch.setenv("JPY_SESSION_NAME", session)
    run = notebook_run(settings, name, None, {"symbols": ["SPX", "NDX"], "fast": 10})
    mlflow.log_metric("answer", 42)
    run.close()
    return MlflowClient().get_run(run.run_id)


def test_an_interactive_run_is_tagged_with_the_notebook_jupyter_names(settings, monkeypatch):
    run = _finished(settings, "01_explore_data", monkeypatch, "notebooks/01_explore_data.ipynb")

    assert mlflow.get_experiment(run.info.experiment_id).name == "01_explore_data"
    assert run.info.status == "FINISHED"
    assert run.data.tags["prism.notebook"] == "notebooks/01_explore_data.ipynb"
    assert run.data.tags["prism.execution"] == "interactive"
    assert run.data.params == {"notebook.symbols": "SPX,NDX", "notebook.fast": "10"}
    assert run.data.metrics == {"answer": 42}
    saved = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "notebook")}
    assert saved == {"notebook/01_explore_data.ipynb", "notebook/01_explore_data.html"}


def test_an_interactive_run_without_a_known_notebook_says_interactive(settings, monkeypatch):
    run = _finished(settings, "05_compare_runs", monkeypatch, None)

    assert run.data.tags["prism.notebook"] == "interactive"
    assert mlflow.get_experiment(run.info.experiment_id).name == "05_compare_runs"
    assert MlflowClient().list_artifacts(run.info.run_id, "notebook") == []


def test_a_renamed_copy_of_a_notebook_gets_its_own_experiment(settings, monkeypatch, tmp_path):
    copy = tmp_path / "my_idea.ipynb"
    shutil.copy(
        Path(__file__).resolve().parents[3] / "notebooks" / "02_backtest_strategy.ipynb", copy
    )

    run = _finished(settings, "02_backtest_strategy", monkeypatch, str(copy))

    assert mlflow.get_experiment(run.info.experiment_id).name == "my_idea"
    assert run.data.tags["prism.notebook"] == str(copy.resolve())


@pytest.fixture
def gappy(engine):
    """The bundled bars with SPX's first week of March 2015 deleted."""
    ingest(engine, ArchBarSource())
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM market_data.ohlcv WHERE symbol = 'SPX' "
                "AND time BETWEEN '2015-03-02' AND '2015-03-06'"
            )
        )
    return engine


def test_the_research_gate_refuses_gaps_and_says_how_to_allow_them(gappy):
    with pytest.raises(DataUnavailable) as refused:
        research_gate(gappy, ["SPX", "NDX"], "1d", "2015-01-01", "2015-12-31", False)

    assert "SPX 1d 2015-03-02 … 2015-03-06 (5 bars)" in str(refused.value)
    assert "allow_gaps = True" in str(refused.value)


def test_allowed_gaps_and_clean_windows_are_recorded_as_tags(gappy):
    allowed = research_gate(gappy, ["SPX"], "1d", "2015-01-01", "2015-12-31", True)
    clean = research_gate(gappy, ["SPX", "NDX"], "1d", "2016-01-01", "2016-12-31", False)

    assert allowed == {"prism.allow_gaps": "true", "prism.data_gate": "skipped"}
    assert clean == {"prism.allow_gaps": "false", "prism.data_gate": "passed"}


def test_the_notebooks_session_path_resolves_from_the_checkout(monkeypatch):
    from prism.research.tracking import session_notebook

    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/02_backtest_strategy.ipynb")

    found = session_notebook()

    assert found is not None and found.is_file()
    assert found == Path(__file__).resolve().parents[3] / "notebooks" / "02_backtest_strategy.ipynb"
