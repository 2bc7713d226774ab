"""A research run's pages reference the installed plotly.js instead of embedding it: the
notebook's HTML draws its figures from their stored JSON, and the tear sheet stays small."""

from __future__ import annotations

from pathlib import Path

import nbformat
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from prism.research.plots import plotly_js_reference
from prism.research.tracking import PLOTLY_MIME, render_html


def notebook_with_figures(path: Path, figures: int) -> Path:
    """Write a notebook whose cells each show one figure as plotly's mimetype renderer does."""
    node = nbformat.v4.new_notebook()
    for n in range(figures):
        figure = go.Figure(go.Scatter(x=list(range(50)), y=[v * n for v in range(50)]))
        cell = nbformat.v4.new_code_cell(f"figure_{n}")
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data", data={PLOTLY_MIME: figure.to_plotly_json(), "text/plain": "fig"}
            )
        ]
        node.cells.append(cell)
    nbformat.write(node, path)
    return path


def test_the_notebook_page_draws_every_figure_with_one_reference_to_the_packaged_plotly_js(
    tmp_path: Path,
) -> None:
    notebook = notebook_with_figures(tmp_path / "run.ipynb", figures=3)

    page = render_html(notebook, tmp_path / "run.html").read_text()

    assert page.count(f'<script src="{plotly_js_reference()}"') == 1
    assert page.count("Plotly.newPlot") == 3
    assert get_plotlyjs()[:2000] not in page
    assert len(page.encode()) < len(get_plotlyjs()) / 4


def test_the_plotly_js_reference_names_a_file_that_exists() -> None:
    reference = plotly_js_reference()

    assert reference.startswith("file://")
    assert Path(reference.removeprefix("file://")).read_text()[:1000] == get_plotlyjs()[:1000]
