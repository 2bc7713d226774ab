"""Reports: execute the daily report notebook with papermill and save it as HTML.

The notebook (``notebooks/reports/daily_report.ipynb``) runs on the project's kernel, which
reads its settings from the environment like every Prism process; the executed copy and its
HTML (code hidden, plotly figures kept) go to ``settings.home / "reports"``, named by day and
deployment, so a repeated run replaces its own files and nothing else.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from prism.core.errors import ConfigError
from prism.core.settings import Settings, export_service_environment, project_root
from prism.monitoring.daily import report_day
from prism.research.notebooks import NotebookFailed, execute, failure

DAILY_REPORT = Path("notebooks") / "reports" / "daily_report.ipynb"
"""The daily report notebook, relative to the checkout."""


def reports_dir(settings: Settings) -> Path:
    """Return the folder reports are written to (created if missing)."""
    folder = settings.home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_daily_report(
    settings: Settings,
    report_date: str | date | None,
    deployment: str | None = None,
    notebook: Path | None = None,
    progress: bool = False,
) -> Path:
    """Execute the daily report for ``report_date`` (UTC; None: today) and ``deployment``
    (None: every deployment); return the HTML file written. ``progress`` shows papermill's
    progress bar over the cells (on standard error).

    Raises :class:`NotebookFailed` naming the failing cell (its number, first line and error)
    and where the executed copy is, and :class:`ConfigError` when the notebook is missing.
    """
    source = (notebook or project_root() / DAILY_REPORT).resolve()
    if not source.exists():
        raise ConfigError(f"report notebook {source} not found; is this a Prism checkout?")
    day = report_day(report_date)
    stem = f"daily_report-{day.isoformat()}-{deployment or 'all'}"
    executed = reports_dir(settings) / f"{stem}.ipynb"
    export_service_environment(settings)
    parameters = {"report_date": day.isoformat(), "deployment": deployment}
    try:
        execute(source, executed, parameters, progress=progress)
    except PapermillExecutionError as err:
        raise NotebookFailed(
            f"{source.name} failed in {failure(err)} [{_first_line(executed, err.exec_count)}] "
            f"(executed copy: {executed})"
        ) from err
    html = executed.with_suffix(".html")
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    html.write_text(body, encoding="utf-8")
    return html


def _first_line(executed: Path, exec_count: int) -> str:
    """Return the first line of the executed cell numbered ``exec_count``."""
    for cell in nbformat.read(executed, as_version=4).cells:
        if cell.cell_type == "code" and cell.get("execution_count") == exec_count:
            return str(cell.source).strip().splitlines()[0] if cell.source.strip() else ""
    return "cell source unavailable"
