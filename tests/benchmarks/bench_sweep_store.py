"""A notebook sweep's results as one parent run holding the grid, against one MLflow run per
combination: the cost of recording N trials in the tracking store and of finding the best.

Case: N combinations (``PRISM_BENCH_SWEEP_TRIALS``, default 1,000), each with 4 parameters and
20 metrics, as the workers of ``prism research sweep`` return them. Prism: the sweep's own
recording (:func:`prism.research.sweeps._finish` with ``keep=0``: one parent run, the table as
Parquet and CSV artifacts, ``trials``, ``failed`` and the Sharpe variance), then reading the
table back and ranking it (:func:`best_trials`). Peer: what tracking every trial would do, one
run per combination (``create_run``, ``log_batch`` of its parameters and metrics,
``set_terminated``), then ``search_runs`` over the experiment ordered by ``oos_sharpe``. Both in
a fresh SQLite MLflow store (the default store), created before the clock starts. The notebook
executions themselves are the same on both sides and are not part of the figure.

Run alone: ``.venv/bin/python -m tests.benchmarks.bench_sweep_store``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from prism.core.settings import Settings
from prism.research.sweeps import TABLE_ARTIFACT, Trial, _finish, best_trials
from prism.research.tracking import configure, start_run
from tests.benchmarks.measure import measure
from tests.benchmarks.row import Row, run_alone

TRIALS = int(os.environ.get("PRISM_BENCH_SWEEP_TRIALS", "1000"))
NOTEBOOK = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks" / "sweep_probe.ipynb"
PEER = "one MLflow run per trial + search_runs"


def trials(n: int) -> list[Trial]:
    """Return ``n`` finished trials with 4 grid parameters and 20 metrics (fixed seed)."""
    rng = np.random.default_rng(7)
    names = ["oos_sharpe", "sharpe", "max_drawdown", "n_trades"] + [f"m{k}" for k in range(16)]
    return [
        Trial(
            k,
            {"fast": k % 50, "slow": 50 + k % 100, "width": 1.0 + k % 7, "symbol": "SPX"},
            {name: float(v) for name, v in zip(names, rng.normal(size=len(names)), strict=True)},
            seconds=1.0,
        )
        for k in range(n)
    ]


class Store:
    """A fresh SQLite MLflow store in a temporary folder, made current for this process."""

    def __init__(self) -> None:
        self.folder: tempfile.TemporaryDirectory[str] | None = None
        self.settings: Settings | None = None

    def reset(self) -> None:
        """Replace the store with an empty one and create the probe's experiment."""
        if self.folder is not None:
            self.folder.cleanup()
        self.folder = tempfile.TemporaryDirectory(prefix="prism-bench-sweep-")
        root = Path(self.folder.name)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        self.settings = Settings(mlruns_dir=root)
        configure(self.settings, NOTEBOOK.stem)


def record_as_parent(store: Store, done: list[Trial]) -> dict[str, Any]:
    """Record the trials as ``prism research sweep`` does, then read back the best."""
    assert store.settings is not None
    parent = start_run(store.settings, str(NOTEBOOK), {})
    combos = [(t.grid, {k: str(v) for k, v in t.grid.items()}) for t in done]
    _finish(store.settings, NOTEBOOK, parent, combos, done, {}, 0, "oos_sharpe")
    with tempfile.TemporaryDirectory() as folder:
        path = MlflowClient().download_artifacts(parent, f"{TABLE_ARTIFACT}/trials.parquet", folder)
        table = pd.read_parquet(path)
    return dict(best_trials(table, "oos_sharpe", 1).iloc[0])


def record_as_runs(store: Store, done: list[Trial]) -> dict[str, Any]:
    """Record every trial as its own run, then search the experiment for the best."""
    client = MlflowClient()
    experiment = configure(store.settings or Settings(), NOTEBOOK.stem)
    for trial in done:
        run = client.create_run(experiment)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in trial.metrics.items()],
            params=[Param(k, str(v)) for k, v in trial.grid.items()],
        )
        client.set_terminated(run.info.run_id)
    runs = client.search_runs([experiment], order_by=["metrics.oos_sharpe DESC"], max_results=1)
    return {"oos_sharpe": runs[0].data.metrics["oos_sharpe"], **runs[0].data.params}


def run(notes: list[str]) -> list[Row]:
    """Measure both ways of recording ``TRIALS`` trials; check they find the same best."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    done = trials(TRIALS)
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    ours, theirs = Store(), Store()
    found: dict[str, dict[str, Any]] = {}
    try:
        prism = measure(lambda: found.update(prism=record_as_parent(ours, done)), setup=ours.reset)
        peer = measure(lambda: found.update(peer=record_as_runs(theirs, done)), setup=theirs.reset)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    best, other = found["prism"], found["peer"]
    if best["oos_sharpe"] != other["oos_sharpe"] or int(best["fast"]) != int(other["fast"]):
        raise AssertionError(f"the two ways disagree on the best trial: {best} vs {other}")
    notes.append(
        f"notebook sweep store: {TRIALS:,} trials recorded as 1 parent run with a Parquet table "
        f"vs {TRIALS:,} MLflow runs; both find the same best (oos_sharpe "
        f"{best['oos_sharpe']:.4f})"
    )
    return [
        Row(
            f"sweep of {TRIALS:,} notebook trials: record + find best",
            "trials/s",
            TRIALS,
            prism,
            peer,
            PEER,
        )
    ]


if __name__ == "__main__":
    run_alone(run)
