"""Notebooks are stored without outputs, each research notebook paired with a py:percent file
(jupytext) that holds exactly the same cells, so diffs are read in the ``.py``."""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
RESEARCH = (
    "01_explore_data",
    "02_backtest_strategy",
    "03_parameter_sweep",
    "04_train_ml_strategy",
    "05_compare_runs",
    "06_train_deep_strategy",
)
STORED = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [
        (cell.cell_type, cell.source.strip(), list(cell.metadata.get("tags", [])))
        for cell in notebook.cells
    ]


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.name)
def test_a_stored_notebook_has_no_outputs_or_execution_counts(path):
    notebook = nbformat.read(path, as_version=4)

    dirty = [
        k
        for k, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]

    assert not dirty, (
        f"{path.name}: cells {dirty} hold outputs; strip them with "
        f"`jupytext --to ipynb {path.with_suffix('.py').name}` (the .py is the source)"
    )


@pytest.mark.parametrize("stem", RESEARCH)
def test_a_research_notebook_and_its_py_percent_pair_hold_the_same_cells(stem):
    stored = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    paired = jupytext.read(NOTEBOOKS / f"{stem}.py")

    assert stored.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert _cells(stored) == _cells(paired), (
        f"{stem}.ipynb is out of sync with {stem}.py; run `jupytext --sync notebooks/{stem}.py`"
    )


@pytest.mark.parametrize("stem", RESEARCH)
def test_a_research_notebook_has_one_parameters_cell_that_takes_a_run_id(stem):
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)

    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]

    assert len(tagged) == 1
    assert "mlflow_run_id = None" in tagged[0].source
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_a_notebook_with_outputs_is_caught(tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "02_backtest_strategy.ipynb", as_version=4)
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    written = tmp_path / "x.ipynb"
    nbformat.write(notebook, written)

    with pytest.raises(AssertionError, match="hold outputs"):
        test_a_stored_notebook_has_no_outputs_or_execution_counts(written)
