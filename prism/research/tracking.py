"""MLflow, behind a few functions that log a research run's provenance automatically.

Every execution of a research notebook is one MLflow run in an experiment named after the
notebook's stem (``02_backtest_strategy``). ``prism research run`` opens the run
(:func:`start_run`), hands its id to the notebook, and closes it with the executed notebook and
its HTML rendering attached (:func:`finish_run`). Run interactively (JupyterLab, nbval), the
notebook opens its own run (:func:`notebook_run`), tagged with the notebook's path when the
kernel knows it (``JPY_SESSION_NAME``) and ``interactive`` otherwise, and attaches the saved
notebook when it closes.

Tags on every run: ``git_commit``, ``git_dirty``, ``config_hash``, ``prism.notebook`` (path
relative to the checkout), ``prism.version``; a run that read bars adds ``prism.data_hash``,
``prism.data_start`` and ``prism.data_end`` (:func:`log_data`). :func:`log_backtest` logs a
backtest: parameters, whole-period and out-of-sample metrics, the equity PNG, the tear sheet
(HTML and PNG), the trades and the equity curve as Parquet, and the strategy as a pyfunc model
with a signature and an input example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from prism.backtest.engine import BacktestResult, report
from prism.backtest.plots import save_equity_png
from prism.backtest.tearsheet import tear_sheet, write_tear_sheet, write_tear_sheet_png
from prism.core.errors import ConfigError
from prism.core.settings import Settings, project_root
from prism.data.bars import BAR_COLUMNS, close_panel
from prism.research.evaluation import split_metrics
from prism.research.mlflow_store import connect as connect
from prism.research.mlflow_store import mlflow_client as mlflow_client
from prism.research.plots import plotly_js_reference
from prism.strategies import Strategy, strategy_params
from prism.strategies.code import copy_sources, strategy_modules
from prism.strategies.pyfunc import (
    CODE_ARTIFACT,
    StrategyModel,
    example_bars,
    strategy_signature,
)

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

MODEL_ARTIFACT = "model"
MODEL_URI_TAG = "prism.model_uri"
CODE_HASH_TAG = "prism.code_sha256"
"""The hash of the strategy code logged with the run's model (:mod:`prism.strategies.code`)."""
NOTEBOOK_TAG = "prism.notebook"
VERSION_TAG = "prism.version"
DATA_HASH_TAG = "prism.data_hash"
DATA_START_TAG = "prism.data_start"
DATA_END_TAG = "prism.data_end"
EXECUTION_TAG = "prism.execution"
INTERACTIVE = "interactive"
NOTEBOOK_ARTIFACTS = "notebook"
EQUITY_ARTIFACT = "equity.parquet"
TRADES_ARTIFACT = "trades.parquet"
PIP_REQUIREMENTS = ["mlflow", "pandas", "numpy", "prism-quant"]
"""The distributions a logged model needs; :func:`pinned_requirements` pins each to the
version installed here (the lock file's, in an environment made by ``make install``)."""
PARENT_TAG = "mlflow.parentRunId"
SWEEP_TAG = "prism.sweep"
"""``parent`` on a sweep's parent run (the grid's table), ``child`` on its kept trials."""
PLOTLY_MIME = "application/vnd.plotly.v1+json"
"""The output type plotly's ``plotly_mimetype`` renderer stores a figure as."""

TRIALS_METRIC = "trials"
BACKTEST_CONFIG_PARAM = "backtest_config"
"""The run's :class:`~prism.backtest.engine.BacktestConfig` as JSON, so a gate can re-run it."""
PARITY_BARS_PARAM = "parity_bars"
PARITY_BARS = 20
"""Bars the backtest/live parity check steps through by default."""
SHARPE_VARIANCE_METRIC = "oos_sharpe_variance"
"""Variance of the annualised ``oos_sharpe`` across a sweep's trials (logged by sweeps)."""


def configure(settings: Settings, experiment: str | None = None) -> str:
    """Point MLflow at the configured store and ``experiment`` (default: the settings'
    experiment), creating it if needed; return the experiment id."""
    connect(settings)
    name = experiment or settings.experiment
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        try:
            experiment_id = mlflow.create_experiment(
                name, artifact_location=settings.mlflow_artifact_uri
            )
        except mlflow.exceptions.MlflowException:
            experiment_id = _experiment_id(name)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def _experiment_id(name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"MLflow has no experiment {name!r} and could not create it")
    return str(experiment.experiment_id)


def experiment_name(notebook: str | Path) -> str:
    """Return the experiment a notebook's runs go to: its file name without the suffix."""
    return Path(notebook).stem


def git_state() -> dict[str, str]:
    """Return the checkout's commit and whether it has uncommitted changes."""
    root = project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def prism_version() -> str:
    """Return the installed Prism version."""
    try:
        return version("prism-quant")
    except PackageNotFoundError:
        return "unknown"


def notebook_label(notebook: Path | None) -> str:
    """Return the ``prism.notebook`` tag: the path relative to the checkout when inside it,
    the absolute path otherwise, ``interactive`` when unknown."""
    if notebook is None:
        return INTERACTIVE
    resolved = notebook.resolve()
    try:
        return resolved.relative_to(project_root()).as_posix()
    except ValueError:
        return str(resolved)


def session_notebook() -> Path | None:
    """Return the notebook this kernel runs, as Jupyter tells it (``JPY_SESSION_NAME`` in the
    environment, or IPython's ``__session__``), or None when nothing says."""
    name = os.environ.get("JPY_SESSION_NAME")
    if not name:
        try:
            # Imported here: IPython is present only inside a kernel.
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        name = shell.user_ns.get("__session__") if shell is not None else None
    if not name:
        return None
    given = Path(str(name))
    for candidate in (given, project_root() / given, Path.cwd() / given.name):
        if candidate.is_file():
            return candidate.resolve()
    return given


def provenance_tags(settings: Settings, notebook: Path | None) -> dict[str, str]:
    """Return the tags every research run carries: git state, settings hash, notebook, version."""
    return {
        **git_state(),
        "config_hash": settings.config_hash(),
        NOTEBOOK_TAG: notebook_label(notebook),
        VERSION_TAG: prism_version(),
    }


def start_run(
    settings: Settings, source: str, params: dict[str, Any], strategy: str | None = None
) -> str:
    """Create a research run for the notebook ``source`` (in the experiment named after it),
    tagged with its provenance and parameters and named by :func:`run_name`; return its id (the
    run is left open)."""
    experiment_id = configure(settings, experiment_name(source))
    tags = {**provenance_tags(settings, Path(source)), "source": source, EXECUTION_TAG: "papermill"}
    name = run_name(Path(source).stem, params, strategy)
    run = MlflowClient().create_run(experiment_id, tags=tags, run_name=name)
    for key, value in params.items():
        MlflowClient().log_param(run.info.run_id, f"notebook.{key}", _param_value(value))
    return str(run.info.run_id)


def run_name(stem: str, params: dict[str, Any], strategy: str | None = None) -> str:
    """Return a run's name: the strategy (given, or the notebook's default), then the parameters
    it was run with, then the notebook, e.g. ``sma_crossover fast=10 slow=50 · 02_backtest``
    (at most 250 characters, MLflow's limit)."""
    chosen = str(params.get("strategy", strategy or "")).strip()
    shown = " ".join(f"{k}={_param_value(v)}" for k, v in params.items() if k != "strategy")
    name = " · ".join(part for part in (f"{chosen} {shown}".strip(), stem) if part)
    return name if len(name) <= 250 else name[:249] + "…"


def _param_value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


@dataclass(frozen=True)
class NotebookRun:
    """The MLflow run a notebook logs into; ``interactive`` when the notebook opened it."""

    run_id: str
    notebook: Path | None
    interactive: bool

    def close(self) -> None:
        """End an interactive run, attaching the saved notebook and its HTML when known (a
        papermill run is closed by ``prism research run`` with the executed copy)."""
        if not self.interactive:
            _detach_active_run(self.run_id)
            return
        if self.notebook is not None and self.notebook.is_file():
            attach_notebook(self.run_id, self.notebook)
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run()
        else:
            MlflowClient().set_terminated(self.run_id, status="FINISHED")


def _detach_active_run(run_id: str) -> None:
    """Stop treating ``run_id`` as this process's active run without ending it.

    A papermill run is ended by the process that opened it, once the executed notebook is
    attached; in a warm kernel (sweeps, the research worker) the next notebook would otherwise
    find it still active and end it again, moving its end time past the next run's start.
    MLflow has no public call for this, so its fluent run stack is popped directly."""
    from mlflow.environment_variables import MLFLOW_RUN_ID
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        MLFLOW_RUN_ID.unset()


def notebook_run(
    settings: Settings, name: str, run_id: str | None, parameters: dict[str, Any]
) -> NotebookRun:
    """Make the notebook ``name``'s run the active MLflow run: resume ``run_id`` (as ``prism
    research run`` passes it) or, run interactively, start one with the notebook's provenance
    and ``parameters`` in the experiment named after the notebook's file when the kernel knows
    it (a renamed copy gets its own), else ``name``."""
    active = mlflow.active_run()
    if active is not None:
        mlflow.end_run()
    if run_id:
        configure(settings, name)
        mlflow.start_run(run_id=run_id)
        return NotebookRun(run_id, None, interactive=False)
    notebook = session_notebook()
    experiment_id = configure(settings, experiment_name(notebook) if notebook else name)
    tags = {**provenance_tags(settings, notebook), EXECUTION_TAG: INTERACTIVE}
    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags)
    mlflow.log_params({f"notebook.{k}": _param_value(v) for k, v in parameters.items()})
    return NotebookRun(str(run.info.run_id), notebook, interactive=True)


@contextmanager
def research_run(settings: Settings, run_id: str | None = None) -> Iterator[str]:
    """Resume the run ``run_id`` or start a new one in the settings' experiment, for code
    outside a notebook (tests, scripts)."""
    configure(settings)
    tags = None if run_id else provenance_tags(settings, session_notebook())
    with mlflow.start_run(run_id=run_id or None, tags=tags) as run:
        yield str(run.info.run_id)


def data_hash(bars: pd.DataFrame) -> str:
    """Return a SHA-256 of the bars' content (sorted, canonical CSV), to pin the data a run used."""
    canonical = pl.from_pandas(bars[BAR_COLUMNS].sort_values(["symbol", "timeframe", "time"]))
    return hashlib.sha256(canonical.write_csv().encode()).hexdigest()


def data_tags(bars: pd.DataFrame) -> dict[str, str]:
    """Return the hash, first and last bar time (ISO 8601, UTC) of ``bars``."""
    return {
        DATA_HASH_TAG: data_hash(bars),
        DATA_START_TAG: pd.Timestamp(bars["time"].min()).isoformat(),
        DATA_END_TAG: pd.Timestamp(bars["time"].max()).isoformat(),
    }


def log_data(bars: pd.DataFrame, tags: dict[str, str] | None = None) -> dict[str, str]:
    """Tag the active run with the data it read (and any extra ``tags``); return the tags."""
    logged = {**data_tags(bars), **(tags or {})}
    mlflow.set_tags(logged)
    return logged


def backtest_tear_sheet(
    strategy: Strategy, bars: pd.DataFrame, result: BacktestResult, symbols: list[str]
) -> go.Figure:
    """Return the tear sheet of a backtest against an equal-weight buy and hold of ``symbols``."""
    benchmark = close_panel(bars).mean(axis=1).reindex(result.equity.index).ffill()
    return tear_sheet(
        result.equity, benchmark, result.trades, f"{strategy.name} on {', '.join(symbols)}"
    )


def log_backtest(
    strategy: Strategy,
    bars: pd.DataFrame,
    result: BacktestResult,
    symbols: list[str],
    oos_start: pd.Timestamp | None = None,
    tags: dict[str, str] | None = None,
    trials: int = 1,
    sheet: go.Figure | None = None,
    parity_bars: int = PARITY_BARS,
) -> dict[str, float]:
    """Log a backtest into the active run and return its metrics.

    Everything :func:`log_backtest_evidence` logs (what the promotion gates recompute from),
    plus the equity PNG and the tear sheet (HTML and PNG).
    """
    metrics = log_backtest_evidence(
        strategy, bars, result, symbols, oos_start, tags, trials, parity_bars
    )
    title = f"{strategy.name} on {', '.join(symbols)}"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        mlflow.log_artifact(str(save_equity_png(result.equity, title, out / "equity_curve.png")))
        figure = (
            sheet if sheet is not None else backtest_tear_sheet(strategy, bars, result, symbols)
        )
        page = write_tear_sheet(
            figure, result.trades, out / "tear_sheet.html", plotlyjs=plotly_js_reference()
        )
        mlflow.log_artifact(str(page))
        picture = write_tear_sheet_png(figure, out / "tear_sheet.png")
        if picture is not None:
            mlflow.log_artifact(str(picture))
    return metrics


def log_backtest_evidence(
    strategy: Strategy,
    bars: pd.DataFrame,
    result: BacktestResult,
    symbols: list[str],
    oos_start: pd.Timestamp | None = None,
    tags: dict[str, str] | None = None,
    trials: int = 1,
    parity_bars: int = PARITY_BARS,
    signature: ModelSignature | None = None,
) -> dict[str, float]:
    """Log what the promotion gates recompute a backtest from into the active run; return its
    metrics (``signature`` replaces the model's inferred one).

    Metrics: the whole period's (``sharpe``, ``max_drawdown``, ``n_trades``, …), ``trials``
    (parameter combinations tried to get here) and, with ``oos_start``, the in-sample
    (``is_*``) and out-of-sample (``oos_*``) segments'. Parameters: the strategy, the bars'
    symbols, timeframe and span, the out-of-sample start (``oos_start_time``, UTC), the
    backtest's configuration (``backtest_config``, JSON) and the parity check's window.
    Tags: the data's and ``tags`` (the look-ahead and parity checks, the data gate).
    Artifacts: trades and equity as Parquet, and the strategy as a pyfunc model.
    """
    timeframe = str(bars["timeframe"].iloc[0])
    metrics = {**report(result, timeframe), "trials": float(trials)}
    if oos_start is not None:
        metrics.update(split_metrics(result, timeframe, oos_start))
    mlflow.log_params(
        {
            "strategy": strategy.name,
            **{f"strategy.{k}": v for k, v in strategy_params(strategy).items()},
            "symbols": ",".join(symbols),
            "timeframe": timeframe,
            "start": str(bars["time"].min().date()),
            "end": str(bars["time"].max().date()),
            "oos_start": "" if oos_start is None else str(oos_start.date()),
            "oos_start_time": "" if oos_start is None else pd.Timestamp(oos_start).isoformat(),
            "capital": result.config.capital,
            "commission_bps": result.config.commission_bps,
            "slippage_bps": result.config.slippage_bps,
            BACKTEST_CONFIG_PARAM: json.dumps(dataclasses.asdict(result.config), sort_keys=True),
            PARITY_BARS_PARAM: parity_bars,
            "data_hash": data_hash(bars),
            "n_bars": len(bars),
        }
    )
    mlflow.log_metrics(metrics)
    log_data(bars, tags)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        result.trades.to_parquet(out / TRADES_ARTIFACT, index=False)
        result.equity.rename("equity").rename_axis("time").reset_index().to_parquet(
            out / EQUITY_ARTIFACT, index=False
        )
        mlflow.log_artifact(str(out / TRADES_ARTIFACT))
        mlflow.log_artifact(str(out / EQUITY_ARTIFACT))
    log_strategy_model(strategy, bars, signature)
    return metrics


def log_strategy_model(
    strategy: Strategy, bars: pd.DataFrame, signature: ModelSignature | None = None
) -> ModelInfo:
    """Log ``strategy`` as the run's pyfunc model, with a signature (``signature``, or one
    inferred from the newest bars of ``bars``, also its input example), the source of the
    code it runs (the ``code`` artifact, :mod:`prism.strategies.code`) and the models a trained
    strategy fitted (so loading it does not retrain); tag the run with the model's URI and code
    hash."""
    with tempfile.TemporaryDirectory() as folder:
        code_dir = Path(folder) / CODE_ARTIFACT
        manifest = copy_sources(strategy_modules(type(strategy)), code_dir)
        fits = strategy.fits() if hasattr(strategy, "fits") else None
        model = StrategyModel(strategy.name, strategy_params(strategy), manifest, fits)
        example = example_bars(bars)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=model,
                artifacts={CODE_ARTIFACT: str(code_dir)},
                signature=signature or strategy_signature(model, example),
                input_example=example if signature is None else None,
                pip_requirements=pinned_requirements(),
            )
    mlflow.set_tags({MODEL_URI_TAG: info.model_uri, CODE_HASH_TAG: model.code_sha256})
    return info


def pinned_requirements() -> list[str]:
    """Return :data:`PIP_REQUIREMENTS`, each pinned to its installed version (unpinned when
    the distribution is not installed)."""
    pinned = []
    for name in PIP_REQUIREMENTS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def log_params(params: dict[str, Any]) -> None:
    """Log ``params`` into the active run (lists joined by commas)."""
    mlflow.log_params({name: _param_value(value) for name, value in params.items()})


def log_metrics(metrics: dict[str, float | int]) -> None:
    """Log ``metrics`` (numbers) into the active run."""
    mlflow.log_metrics({name: float(value) for name, value in metrics.items()})


def log_frame(frame: pd.DataFrame, name: str) -> None:
    """Log ``frame`` as the Parquet artifact ``name`` (e.g. ``grid.parquet``) of the active run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        frame.to_parquet(path)
        mlflow.log_artifact(str(path))


def render_html(notebook: Path, target: Path) -> Path:
    """Write ``notebook`` rendered as an HTML page to ``target``: its plotly figures (stored as
    JSON by :func:`prism.research.plots.use_notebook_renderer`) drawn with the installed
    plotly.js, referenced once in the page's head rather than embedded."""
    # Imported here: read with nbconvert, only when rendering a notebook.
    import nbformat

    node = nbformat.read(notebook, as_version=4)
    figures = 0
    for cell in node.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                data["text/html"] = pio.to_html(
                    data[PLOTLY_MIME], include_plotlyjs=False, full_html=False, validate=False
                )
                figures += 1
    body, _ = _html_exporter().from_notebook_node(node)
    if figures:
        script = f'<script src="{plotly_js_reference()}" charset="utf-8"></script>'
        body = body.replace("</head>", f"{script}\n</head>", 1)
    target.write_text(body, encoding="utf-8")
    return target


_exporters = threading.local()


def _html_exporter() -> HTMLExporter:
    """Return this thread's nbconvert HTML exporter: made once, as its templates take a
    quarter of a second to load (the research worker renders one notebook per run); one per
    thread, as the API runs notebooks on several."""
    exporter = getattr(_exporters, "html", None)
    if exporter is None:
        from nbconvert import HTMLExporter

        exporter = _exporters.html = HTMLExporter()
    return exporter


def attach_notebook(run_id: str, notebook: Path) -> None:
    """Log ``notebook`` and its HTML rendering under the run's ``notebook/`` artifacts."""
    client = MlflowClient()
    client.log_artifact(run_id, str(notebook), artifact_path=NOTEBOOK_ARTIFACTS)
    with tempfile.TemporaryDirectory() as folder:
        page = render_html(notebook, Path(folder) / f"{notebook.stem}.html")
        client.log_artifact(run_id, str(page), artifact_path=NOTEBOOK_ARTIFACTS)


def finish_run(run_id: str, executed_notebook: Path | None, failed: bool) -> None:
    """Attach the executed notebook (and its HTML) to the run; mark it finished or failed."""
    if executed_notebook is not None and executed_notebook.exists():
        attach_notebook(run_id, executed_notebook)
    MlflowClient().set_terminated(run_id, status="FAILED" if failed else "FINISHED")
