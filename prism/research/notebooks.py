"""Research runs: execute a parameterised notebook with papermill as one MLflow run.

``run_notebook`` checks the parameters against the notebook's ``parameters`` cell, opens an MLflow
run (tagged with git state and the settings' hash), hands its id to the notebook as
``mlflow_run_id`` so the notebook logs into it, executes the notebook, then attaches the executed
copy to the run and closes it as finished or failed. A failure names its cell and error.
Sweeps over many parameter combinations live in :mod:`prism.research.sweeps`.

papermill, MLflow and the tracking helpers are imported inside the functions that use them, so
the resident worker's client (:mod:`prism.research.worker`) can read :class:`ResearchRun` and
:class:`NotebookFailed` without paying for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prism.core.errors import ConfigError, PrismError
from prism.core.settings import Settings, export_service_environment
from prism.core.text import read_literal
from prism.research.kernels import KERNEL_ARGUMENTS, KERNEL_NAME, WarmKernel

if TYPE_CHECKING:
    from papermill.exceptions import PapermillExecutionError

RUN_ID_PARAMETER = "mlflow_run_id"


class NotebookFailed(PrismError):
    """A notebook cell raised; the message carries the cell's error."""


@dataclass(frozen=True)
class ResearchRun:
    """A finished research run: its MLflow id, the executed notebook, the metrics it logged."""

    run_id: str
    executed: Path
    metrics: dict[str, float]
    stored_bytes: int | None = None
    """Bytes of the run's artifacts on disk (None when the artifact store is not local)."""


def require_notebook(notebook: Path) -> None:
    """Raise a :class:`ConfigError` naming ``notebook`` when there is no such file."""
    if not notebook.exists():
        raise ConfigError(f"no notebook at {notebook}; notebooks live in notebooks/")


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """Return the notebook's parameters and their default values (from the ``parameters`` cell)."""
    require_notebook(notebook)
    import papermill

    inspected = papermill.inspect_notebook(str(notebook))
    if not inspected:
        raise ConfigError(f"{notebook} has no cell tagged 'parameters'")
    return {name: read_literal(spec["default"]) for name, spec in inspected.items()}


def coerce_parameters(defaults: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    """Return ``raw`` (strings from the command line) typed like the notebook's defaults.

    Lists accept ``A,B`` or a Python literal; numbers and booleans parse as literals.
    """
    unknown = sorted(set(raw) - set(defaults) - {RUN_ID_PARAMETER})
    if unknown:
        raise ConfigError(
            f"the notebook has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are {', '.join(p for p in defaults if p != RUN_ID_PARAMETER)}"
        )
    typed: dict[str, Any] = {}
    for name, text in raw.items():
        default = defaults[name]
        value = read_literal(text)
        if isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(
                f"parameter {name} must be a dict literal such as \"{{'lookback': 126}}\", "
                f"got {text!r}"
            )
        if isinstance(default, list) and not isinstance(value, list):
            value = [item.strip() for item in str(text).split(",") if item.strip()]
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"parameter {name} must be True or False, got {text!r}")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"parameter {name} must be a number, got {text!r}")
            value = type(default)(value) if isinstance(default, float) else value
        elif isinstance(default, str) and not isinstance(value, str):
            value = str(text)
        typed[name] = value
    return typed


def run_notebook(
    settings: Settings,
    notebook: Path,
    raw_parameters: dict[str, str],
    progress: bool = True,
    parent_run_id: str | None = None,
    extra_metrics: dict[str, float] | None = None,
    extra_tags: dict[str, str] | None = None,
    kernel: WarmKernel | None = None,
    on_start: Callable[[str], None] | None = None,
) -> ResearchRun:
    """Execute ``notebook`` with ``raw_parameters`` as one MLflow run; return the run.

    A sweep's kept trial passes its ``parent_run_id`` (the run becomes its child) and the
    metrics and tags it adds (``trials``, the sweep's Sharpe variance); they are logged after the
    notebook's own, so they are the values the run ends with. With ``kernel`` the notebook runs
    on that warm kernel, which is reset after a success and shut down after a failure.
    ``on_start`` is told the run's id once the run is open (the resident worker passes it on, so
    its client can name the run if it is interrupted).
    """
    from mlflow.tracking import MlflowClient
    from papermill.exceptions import PapermillExecutionError

    from prism.research.tracking import PARENT_TAG, finish_run, start_run

    export_service_environment(settings)
    notebook = notebook.resolve()
    defaults = notebook_parameters(notebook)
    parameters = coerce_parameters(defaults, raw_parameters)
    strategy = defaults.get("strategy")
    run_id = start_run(
        settings, str(notebook), parameters, strategy if isinstance(strategy, str) else None
    )
    client = MlflowClient()
    tags = {**(extra_tags or {}), **({PARENT_TAG: parent_run_id} if parent_run_id else {})}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if on_start is not None:
        on_start(run_id)
    output_dir = settings.home / "runs"
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / f"{notebook.stem}-{run_id}.ipynb"
    try:
        execute(notebook, executed, {**parameters, RUN_ID_PARAMETER: run_id}, progress, kernel)
    except BaseException as err:
        if kernel is not None:
            kernel.close()
        finish_run(run_id, executed, failed=True)
        if isinstance(err, PapermillExecutionError):
            raise NotebookFailed(
                f"{notebook.name} failed in {failure(err)} "
                f"(executed copy: {executed}; MLflow run {run_id} marked FAILED)"
            ) from err
        raise
    if kernel is not None:
        kernel.reset()
    for key, number in (extra_metrics or {}).items():
        client.log_metric(run_id, key, number)
    finish_run(run_id, executed, failed=False)
    run = client.get_run(run_id)
    return ResearchRun(
        run_id, executed, dict(run.data.metrics), stored_bytes(run.info.artifact_uri)
    )


def stored_bytes(artifact_uri: str | None) -> int | None:
    """Return the bytes stored under a local (``file:`` or plain path) artifact location, or
    None for a remote one."""
    from urllib.parse import unquote, urlparse

    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file"):
        return None
    root = Path(unquote(parsed.path))
    if not root.exists():
        return None
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def execute(
    notebook: Path,
    executed: Path,
    parameters: dict[str, Any],
    progress: bool,
    kernel: WarmKernel | None = None,
) -> None:
    """Run ``notebook`` with papermill on the project's kernel, writing ``executed``: a new
    kernel, or ``kernel`` (already started, kept running afterwards) when given."""
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        cwd=str(notebook.parent),
        progress_bar=progress,
        log_output=False,
        extra_arguments=KERNEL_ARGUMENTS,
        **({"km": kernel.ready()} if kernel is not None else {}),
    )


def failure(err: PapermillExecutionError) -> str:
    """Return where and why a notebook failed: ``cell N: Error: message``."""
    return f"cell {err.exec_count}: {err.ename}: {err.evalue}"
