"""Research runs side by side (``05_compare_runs``): their metrics as one table and their
equity curves (the ``equity.parquet`` artifact every backtest run logs) on one time axis."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from prism.core.errors import DataUnavailable
from prism.core.settings import Settings
from prism.research.tracking import DATA_HASH_TAG, EQUITY_ARTIFACT, NOTEBOOK_TAG, connect

HEADLINE = (
    "sharpe",
    "max_drawdown",
    "n_trades",
    "total_return",
    "oos_sharpe",
    "oos_max_drawdown",
    "oos_n_trades",
    "trials",
)


def chosen_runs(
    settings: Settings, run_ids: list[str], experiments: list[str], newest: int = 5
) -> list[Run]:
    """Return the runs ``run_ids`` or, when empty, the ``newest`` finished runs of
    ``experiments`` that logged an equity curve (newest first)."""
    connect(settings)
    client = MlflowClient()
    if run_ids:
        try:
            return [client.get_run(run_id) for run_id in run_ids]
        except mlflow.exceptions.MlflowException as err:
            raise DataUnavailable(f"no MLflow run among {', '.join(run_ids)}: {err}") from err
    known = [e for e in (client.get_experiment_by_name(name) for name in experiments) if e]
    if not known:
        return []
    runs = client.search_runs(
        [e.experiment_id for e in known],
        filter_string="attributes.status = 'FINISHED' and metrics.sharpe > -1e9",
        order_by=["attributes.start_time DESC"],
        max_results=newest,
    )
    return list(runs)


def label(run: Run) -> str:
    """Return a short name for a run: run name, strategy and the first 8 characters of its id."""
    strategy = run.data.params.get("strategy", "")
    return " ".join(p for p in (run.info.run_name or "", strategy, run.info.run_id[:8]) if p)


def metrics_table(runs: list[Run], metrics: tuple[str, ...] = HEADLINE) -> pd.DataFrame:
    """Return one row per run (index: :func:`label`) with ``metrics`` (NaN where not logged),
    the strategy, its parameters, the notebook and the data hash."""
    rows = []
    for run in runs:
        params = run.data.params
        rows.append(
            {
                "run": label(run),
                **{m: run.data.metrics.get(m, float("nan")) for m in metrics},
                "strategy": params.get("strategy", ""),
                "parameters": ", ".join(
                    f"{k.removeprefix('strategy.')}={v}"
                    for k, v in sorted(params.items())
                    if k.startswith("strategy.")
                ),
                "notebook": run.data.tags.get(NOTEBOOK_TAG, ""),
                "data_hash": run.data.tags.get(DATA_HASH_TAG, "")[:12],
            }
        )
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def equity_curves(runs: list[Run]) -> pd.DataFrame:
    """Return the runs' equity curves as a (time × run label) float64 frame, each divided by
    its first value so curves of different capital compare; runs without the artifact are
    left out."""
    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        for run in runs:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id, artifact_path=EQUITY_ARTIFACT, dst_path=folder
                )
            except (mlflow.exceptions.MlflowException, OSError):
                continue
            frame = pd.read_parquet(Path(local))
            series = frame.set_index("time")["equity"]
            curves[label(run)] = series / series.iloc[0]
    return pd.DataFrame(curves).sort_index()
