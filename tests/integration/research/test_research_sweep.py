import math
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prism.core.errors import ConfigError
from prism.research.notebooks import notebook_parameters
from prism.research.sweeps import combinations, parse_grid, run_trial, warm_kernel

PROBE = Path(__file__).parents[2] / "fixtures" / "notebooks" / "sweep_probe.ipynb"
"""Logs oos_sharpe = 0.5 x and sharpe = 0.25 x, and raises in its third cell when x == fail_on."""


@pytest.fixture(scope="module")
def swept(settings, tmp_path_factory):
    """`prism research sweep` of x = 1..3 where x = 2 fails, keeping the best one, in its own
    MLflow store: (parent run id, what the command printed, a client on the store)."""
    root = tmp_path_factory.mktemp("sweep-mlruns")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRISM_MLRUNS_DIR", str(root))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        patch.setenv("COLUMNS", "250")
        from prism.cli.app import app

        command = ["research", "sweep", str(PROBE), "--grid", "x=1..3", "--workers", "2"]
        printed = CliRunner().invoke(app, [*command, "--keep", "1", "-p", "fail_on", "2"])
        assert printed.exit_code == 0, printed.output
        parent = printed.stdout.strip().splitlines()[-1]
        yield parent, printed.output, MlflowClient(f"sqlite:///{root}/mlflow.db")


def _table(client, parent, folder) -> pd.DataFrame:
    path = client.download_artifacts(parent, "sweep/trials.parquet", str(folder))
    return pd.read_parquet(path).set_index("x")


def test_every_combination_runs_and_the_failure_names_its_cell(swept, tmp_path):
    parent, output, client = swept

    failure = re.search(r"failed \{'x': 2\}: cell (\d+): (.*)", output)
    assert failure is not None
    assert failure.group(2).strip() == "ValueError: x=2 is the combination meant to fail"
    (copy,) = client.list_artifacts(parent, "failed")
    executed = nbformat.read(client.download_artifacts(parent, copy.path, str(tmp_path)), 4)
    (raising,) = [c for c in executed.cells if c.get("execution_count") == int(failure.group(1))]
    assert raising.source.startswith("if x == fail_on:")
    table = _table(client, parent, tmp_path)
    assert table.loc[[1, 3], "oos_sharpe"].tolist() == [0.5, 1.5]
    assert "3 trials (1 failed)" in output


def test_the_parent_holds_the_whole_grid_and_the_number_of_trials(swept, tmp_path):
    parent, _, client = swept

    run = client.get_run(parent)
    table = _table(client, parent, tmp_path)

    assert run.info.status == "FINISHED"
    assert run.data.metrics["trials"] == 3
    assert run.data.metrics["failed"] == 1
    assert run.data.params["sweep.x"] == "1,2,3"
    assert len(table) == 3
    assert table["status"].to_dict() == {1: "finished", 2: "failed", 3: "finished"}
    assert math.isnan(table.loc[2, "oos_sharpe"])
    # oos_sharpe 0.5 and 1.5: mean 1, squared deviations 0.25 + 0.25, over n - 1 = 1
    assert run.data.metrics["oos_sharpe_variance"] == pytest.approx(0.5)


def test_only_the_best_combination_becomes_a_child_run_with_the_trials(swept):
    parent, output, client = swept
    experiment = client.get_run(parent).info.experiment_id

    runs = client.search_runs([experiment])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]

    assert len(runs) == 2
    (child,) = children
    assert child.data.params["notebook.x"] == "3"
    assert child.info.status == "FINISHED"
    assert child.data.metrics["trials"] == 3
    assert child.data.metrics["oos_sharpe"] == 1.5
    assert child.data.metrics["oos_sharpe_variance"] == pytest.approx(0.5)
    assert child.data.tags["prism.sweep_reproduced"] == "true"
    assert f"children: {child.info.run_id}" in output


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


KERNEL_PROBE = PROBE.with_name("kernel_probe.ipynb")
"""Logs its kernel's pid, and leftover = 1 if a variable an earlier notebook set is still
defined; raises when x == fail_on."""


def test_a_sweep_workers_trials_share_one_kernel_and_start_from_an_empty_namespace(
    settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    kernel = warm_kernel(KERNEL_PROBE.parent)
    try:
        trials = [
            run_trial(
                x,
                str(KERNEL_PROBE),
                {},
                {"fail_on": "3", "x": str(x)},
                str(tmp_path / f"{x}.ipynb"),
            )
            for x in (1, 2, 3)
        ]
        after_failure = kernel.manager
    finally:
        kernel.close()

    assert [t.failed for t in trials] == [False, False, True]
    assert trials[0].metrics["kernel_pid"] == trials[1].metrics["kernel_pid"]
    assert [t.metrics["leftover"] for t in trials[:2]] == [0.0, 0.0]
    assert after_failure is None
