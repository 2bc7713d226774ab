import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from prism.errors import ConfigError
from prism.research import notebook_parameters
from prism.research_sweep import combinations, parse_grid, sweep_notebook

PROBE = Path(__file__).parents[1] / "fixtures" / "notebooks" / "sweep_probe.ipynb"
"""Logs oos_sharpe = 0.5 x and sharpe = 0.25 x, and raises in its third cell when x == fail_on."""


@pytest.fixture(scope="module")
def swept(settings, tmp_path_factory):
    """A sweep of x = 1..3 where x = 2 fails, keeping the best one, in its own MLflow store."""
    root = tmp_path_factory.mktemp("sweep-mlruns")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRISM_MLRUNS_DIR", str(root))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        store = settings.model_copy(update={"mlruns_dir": root})
        seen = []
        result = sweep_notebook(
            store,
            PROBE,
            parse_grid(["x=1..3"]),
            {"fail_on": "2"},
            workers=2,
            keep=1,
            on_trial=seen.append,
        )
        yield result, seen, MlflowClient(store.mlflow_tracking_uri)


def test_every_combination_runs_and_the_failure_names_its_cell(swept):
    result, seen, _ = swept

    assert sorted(t.index for t in seen) == [0, 1, 2]
    (failed,) = result.failures()
    assert failed.grid == {"x": 2}
    cell, error = failed.error.split(": ", 1)
    assert error == "ValueError: x=2 is the combination meant to fail"
    executed = nbformat.read(failed.executed, as_version=4)
    (raising,) = [c for c in executed.cells if c.get("execution_count") == int(cell[5:])]
    assert raising.source.startswith("if x == fail_on:")
    finished = {t.grid["x"]: t.metrics["oos_sharpe"] for t in result.trials if not t.failed}
    assert finished == {1: 0.5, 3: 1.5}


def test_the_parent_holds_the_whole_grid_and_the_number_of_trials(swept, tmp_path):
    result, _, client = swept

    parent = client.get_run(result.parent_run_id)
    table = pd.read_parquet(
        client.download_artifacts(result.parent_run_id, "sweep/trials.parquet", str(tmp_path))
    )

    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials"] == 3
    assert parent.data.metrics["failed"] == 1
    assert parent.data.params["sweep.x"] == "1,2,3"
    assert len(table) == 3
    assert table.set_index("x")["status"].to_dict() == {
        1: "finished",
        2: "failed",
        3: "finished",
    }
    assert math.isnan(table.set_index("x").loc[2, "oos_sharpe"])
    # oos_sharpe 0.5 and 1.5: mean 1, squared deviations 0.25 + 0.25, over n - 1 = 1
    assert parent.data.metrics["oos_sharpe_variance"] == pytest.approx(0.5)
    failed = [a.path for a in client.list_artifacts(result.parent_run_id, "failed")]
    assert len(failed) == 1 and failed[0].endswith(".ipynb")


def test_only_the_best_combination_becomes_a_child_run_with_the_trials(swept):
    result, _, client = swept
    experiment = client.get_run(result.parent_run_id).info.experiment_id

    runs = client.search_runs([experiment])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]

    assert len(runs) == 2
    (child,) = children
    assert child.data.params["notebook.x"] == "3"
    assert child.info.status == "FINISHED"
    assert child.data.metrics["trials"] == 3
    assert child.data.metrics["oos_sharpe"] == 1.5
    assert child.data.metrics["oos_sharpe_variance"] == pytest.approx(0.5)
    assert child.data.tags["prism.sweep_reproduced"] == "true"
    assert [c.run_id for c in result.children] == [child.info.run_id]


def test_a_grid_expands_every_axis_typed_like_the_notebooks_defaults():
    axes = parse_grid(["x=1,2", "timeframe=1d,1h"])

    combos = combinations(notebook_parameters(PROBE), axes, {"fail_on": "7"})

    assert [grid for grid, _ in combos] == [
        {"x": 1, "timeframe": "1d"},
        {"x": 1, "timeframe": "1h"},
        {"x": 2, "timeframe": "1d"},
        {"x": 2, "timeframe": "1h"},
    ]
    assert combos[0][1] == {"fail_on": "7", "x": "1", "timeframe": "1d"}


def test_a_parameter_both_swept_and_fixed_is_refused():
    with pytest.raises(ConfigError, match="x is both a grid axis and a fixed -p parameter"):
        combinations(notebook_parameters(PROBE), parse_grid(["x=1,2"]), {"x": "3"})


def test_an_unknown_grid_parameter_is_named():
    with pytest.raises(ConfigError, match="no parameter\\(s\\) y"):
        combinations(notebook_parameters(PROBE), parse_grid(["y=1,2"]), {})
