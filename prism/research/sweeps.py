"""Notebook sweeps: one research notebook executed over a grid of parameters.

MLflow's stores slow down past a few thousand runs, so a sweep of N combinations is not N runs.
Each combination is executed with papermill in a worker process whose tracking is redirected to
a throwaway SQLite store in a temporary folder: the notebook logs exactly as it always does,
and the worker reads the metrics back from that store (then deletes the trial's artifacts, so a
large sweep does not fill the disk). Each worker keeps one warm kernel
(:mod:`prism.research.kernels`) for the trials it runs, and the kept children share another, so
a kernel's start and the notebook's imports are paid once per worker, not once per trial. What
reaches the real store is:

- one parent run holding the whole grid (parameters, status, the failing cell's error and every
  metric of every combination) as ``sweep/trials.parquet`` and ``.csv``, the metric ``trials``
  (N, failures included: each was a try), ``failed`` and ``oos_sharpe_variance`` (variance of
  the annualised out-of-sample Sharpe across the trials, which the deflated Sharpe gate uses),
  and the executed copies of the failed notebooks under ``failed/``;
- a child run for each of the best ``keep`` combinations only, executed again for real (a full
  run: executed notebook, tear sheet, model, so it can be promoted), with ``trials`` = N and the
  tag ``prism.sweep_reproduced`` saying whether it reproduced the grid's metric.

Re-executing the few kept combinations costs k/N of the sweep and is simpler and sturdier than
copying MLflow 3 logged models between stores, which MLflow has no public API for.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import multiprocessing.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from papermill.exceptions import PapermillExecutionError

from prism.backtest.sweep import parse_axis
from prism.core.errors import ConfigError
from prism.core.settings import Settings, export_service_environment, load_settings
from prism.research.kernels import WarmKernel
from prism.research.notebooks import (
    RUN_ID_PARAMETER,
    NotebookFailed,
    ResearchRun,
    coerce_parameters,
    execute,
    failure,
    notebook_parameters,
    run_notebook,
)
from prism.research.tracking import (
    SHARPE_VARIANCE_METRIC,
    SWEEP_TAG,
    TRIALS_METRIC,
    finish_run,
    start_run,
)

TRIAL_TAG = "prism.sweep_trial"
REPRODUCED_TAG = "prism.sweep_reproduced"
TABLE_ARTIFACT = "sweep"


@dataclass(frozen=True)
class Trial:
    """One combination's outcome: its grid values, its metrics, or where it failed."""

    index: int
    grid: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    executed: Path | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Return whether the notebook raised."""
        return self.error is not None


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: the parent run, the grid's table, the trials and the kept children."""

    parent_run_id: str
    metric: str
    table: pd.DataFrame
    trials: list[Trial]
    children: list[ResearchRun]
    child_failures: list[str]

    def failures(self) -> list[Trial]:
        """Return the trials whose notebook failed."""
        return [trial for trial in self.trials if trial.failed]


def parse_grid(texts: Sequence[str]) -> dict[str, list[str]]:
    """Return ``{name: [value text, ...]}`` from ``name=v1,v2`` or ``name=a..b[:step]`` axes."""
    axes: dict[str, list[str]] = {}
    for text in texts:
        name, values = parse_axis(text)
        if name in axes:
            raise ConfigError(f"grid axis {name} is given twice; list all its values in one --grid")
        axes[name] = [str(value) for value in values]
    if not axes:
        raise ConfigError("a sweep needs at least one --grid name=v1,v2,...")
    return axes


def combinations(
    defaults: dict[str, Any], axes: dict[str, list[str]], fixed: dict[str, str]
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Return each combination as (typed grid values, raw parameters incl. the fixed ones)."""
    clash = sorted(set(axes) & set(fixed))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is both a grid axis and a fixed -p parameter")
    combos = []
    for values in itertools.product(*axes.values()):
        raw = dict(zip(axes, values, strict=True))
        typed = coerce_parameters(defaults, {**fixed, **raw})
        combos.append(({name: typed[name] for name in axes}, {**fixed, **raw}))
    return combos


def _redirect_tracking(root: str) -> None:
    """Point this worker's MLflow (and the kernels it starts) at its own throwaway store."""
    store = Path(root) / f"worker-{os.getpid()}"
    store.mkdir(parents=True, exist_ok=True)
    os.environ["PRISM_MLRUNS_DIR"] = str(store)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"


def _worker_context() -> multiprocessing.context.BaseContext:
    """Return a fork server that has imported this module once: workers fork from it cheaply
    and from a single-threaded process (forking the caller, which may run a progress bar's
    thread, could inherit a held lock)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_KERNELS: dict[Path, WarmKernel] = {}
"""This worker process's warm kernel per notebook folder (shut down when the worker exits)."""


def warm_kernel(folder: Path) -> WarmKernel:
    """Return this worker's warm kernel for notebooks in ``folder``, made on first use."""
    if folder not in _KERNELS:
        kernel = _KERNELS[folder] = WarmKernel(folder)
        multiprocessing.util.Finalize(kernel, kernel.close, exitpriority=10)
    return _KERNELS[folder]


def run_trial(
    index: int, notebook: str, grid: dict[str, Any], raw: dict[str, str], executed: str
) -> Trial:
    """Execute one combination in this (redirected) worker, on the worker's warm kernel, and
    return its metrics or failure."""
    started = time.perf_counter()
    settings = load_settings()
    path = Path(notebook)
    parameters = coerce_parameters(notebook_parameters(path), raw)
    run_id = start_run(settings, notebook, parameters)
    output = Path(executed)
    kernel = warm_kernel(path.parent)
    try:
        execute(path, output, {**parameters, RUN_ID_PARAMETER: run_id}, False, kernel)
    except PapermillExecutionError as err:
        kernel.close()
        finish_run(run_id, None, failed=True)
        return Trial(index, grid, {}, failure(err), output, time.perf_counter() - started)
    except Exception as err:  # a dead kernel or a broken notebook file: report, go on
        kernel.close()
        finish_run(run_id, None, failed=True)
        kept = output if output.exists() else None
        return Trial(index, grid, {}, f"{type(err).__name__}: {err}", kept, 0.0)
    kernel.reset()
    finish_run(run_id, None, failed=False)
    metrics = dict(MlflowClient().get_run(run_id).data.metrics)
    output.unlink(missing_ok=True)
    shutil.rmtree(settings.mlruns_dir / "artifacts", ignore_errors=True)
    return Trial(index, grid, metrics, None, None, time.perf_counter() - started)


def trial_table(trials: Sequence[Trial]) -> pd.DataFrame:
    """Return one row per trial: ``trial``, the grid's parameters, ``status``, ``error``,
    ``seconds`` and every metric any trial logged (NaN where a trial has none)."""
    rows = [
        {
            "trial": t.index,
            **t.grid,
            "status": "failed" if t.failed else "finished",
            "error": t.error or "",
            "seconds": round(t.seconds, 3),
            **t.metrics,
        }
        for t in sorted(trials, key=lambda t: t.index)
    ]
    return pd.DataFrame(rows)


def ranking_metric(table: pd.DataFrame, wanted: str) -> str:
    """Return ``wanted`` if some trial logged it, else ``sharpe``; a ConfigError if neither."""
    for metric in (wanted, "sharpe"):
        if metric in table and table[metric].notna().any():
            return metric
    raise ConfigError(
        f"no trial logged the metric {wanted!r} (nor 'sharpe'), so the best cannot be chosen; "
        "check the failures above or name a logged metric with --metric"
    )


def best_trials(table: pd.DataFrame, metric: str, keep: int) -> pd.DataFrame:
    """Return the ``keep`` finished trials with the highest ``metric``, best first."""
    valid = table[(table["status"] == "finished") & table[metric].notna()]
    return valid.sort_values([metric, "trial"], ascending=[False, True]).head(keep)


def sharpe_variance(table: pd.DataFrame) -> float | None:
    """Return the variance (ddof 1) of ``oos_sharpe`` across finished trials, if 2+ have it."""
    if "oos_sharpe" not in table:
        return None
    values = table.loc[table["status"] == "finished", "oos_sharpe"].dropna()
    return float(values.var(ddof=1)) if len(values) >= 2 else None


def sweep_notebook(
    settings: Settings,
    notebook: Path,
    axes: dict[str, list[str]],
    fixed: dict[str, str] | None = None,
    workers: int | None = None,
    keep: int = 3,
    metric: str = "oos_sharpe",
    on_trial: Callable[[Trial], None] | None = None,
) -> SweepResult:
    """Execute ``notebook`` once per combination of ``axes`` (plus ``fixed``), in parallel
    worker processes, as one parent MLflow run with children for the best ``keep``."""
    export_service_environment(settings)
    notebook = notebook.resolve()
    defaults = notebook_parameters(notebook)
    fixed = dict(fixed or {})
    combos = combinations(defaults, axes, fixed)
    n = len(combos)
    if keep < 0:
        raise ConfigError(f"--keep must be 0 or more, got {keep}")
    pool_size = max(1, min(workers or os.cpu_count() or 1, n))
    parent = start_run(settings, str(notebook), coerce_parameters(defaults, fixed))
    client = MlflowClient()
    client.set_tag(parent, SWEEP_TAG, "parent")
    for name, values in axes.items():
        client.log_param(parent, f"sweep.{name}", ",".join(values))
    client.log_param(parent, "sweep.keep", str(keep))
    client.log_metric(parent, TRIALS_METRIC, float(n))
    executed_dir = settings.home / "runs" / f"sweep-{parent}"
    executed_dir.mkdir(parents=True, exist_ok=True)
    stores = tempfile.mkdtemp(prefix="prism-sweep-")
    trials: list[Trial] = []
    try:
        with ProcessPoolExecutor(
            max_workers=pool_size,
            mp_context=_worker_context(),
            initializer=_redirect_tracking,
            initargs=(stores,),
        ) as pool:
            futures = [
                pool.submit(
                    run_trial,
                    k,
                    str(notebook),
                    grid,
                    raw,
                    str(executed_dir / f"{notebook.stem}-trial{k:04d}.ipynb"),
                )
                for k, (grid, raw) in enumerate(combos)
            ]
            for future in as_completed(futures):
                trial = future.result()
                trials.append(trial)
                if on_trial is not None:
                    on_trial(trial)
    except BaseException:
        finish_run(parent, None, failed=True)
        raise
    finally:
        shutil.rmtree(stores, ignore_errors=True)
    return _finish(settings, notebook, parent, combos, trials, defaults, keep, metric)


def _finish(
    settings: Settings,
    notebook: Path,
    parent: str,
    combos: list[tuple[dict[str, Any], dict[str, str]]],
    trials: list[Trial],
    defaults: dict[str, Any],
    keep: int,
    wanted: str,
) -> SweepResult:
    client = MlflowClient()
    table = trial_table(trials)
    n = len(combos)
    failed = [t for t in trials if t.failed]
    client.log_metric(parent, "failed", float(len(failed)))
    with tempfile.TemporaryDirectory() as folder:
        table.to_parquet(Path(folder) / "trials.parquet", index=False)
        table.to_csv(Path(folder) / "trials.csv", index=False)
        client.log_artifacts(parent, folder, artifact_path=TABLE_ARTIFACT)
    for trial in failed:
        if trial.executed is not None and trial.executed.exists():
            client.log_artifact(parent, str(trial.executed), artifact_path="failed")
    if len(failed) == n:
        finish_run(parent, None, failed=True)
        return SweepResult(parent, wanted, table, trials, [], [])
    metric = ranking_metric(table, wanted)
    variance = sharpe_variance(table)
    extra = {TRIALS_METRIC: float(n)}
    if variance is not None:
        client.log_metric(parent, SHARPE_VARIANCE_METRIC, variance)
        extra[SHARPE_VARIANCE_METRIC] = variance
    best = best_trials(table, metric, keep)
    if len(best):
        client.log_metric(parent, f"best_{metric}", float(best[metric].iloc[0]))
    children: list[ResearchRun] = []
    child_failures: list[str] = []
    kernel = WarmKernel(notebook.parent)
    try:
        for row in best.to_dict("records"):
            index = int(row["trial"])
            raw = dict(combos[index][1])
            if TRIALS_METRIC in defaults and TRIALS_METRIC not in raw:
                raw[TRIALS_METRIC] = str(n)
            try:
                child = run_notebook(
                    settings,
                    notebook,
                    raw,
                    progress=False,
                    parent_run_id=parent,
                    extra_metrics=extra,
                    extra_tags={SWEEP_TAG: "child", TRIAL_TAG: str(index)},
                    kernel=kernel,
                )
            except NotebookFailed as err:
                child_failures.append(f"trial {index}: {err}")
                continue
            expected = float(row[metric])
            reproduced = math.isclose(
                child.metrics.get(metric, math.nan), expected, rel_tol=1e-9, abs_tol=1e-12
            )
            client.set_tag(child.run_id, REPRODUCED_TAG, str(reproduced).lower())
            children.append(child)
    finally:
        kernel.close()
    finish_run(parent, None, failed=False)
    return SweepResult(parent, metric, table, trials, children, child_failures)
