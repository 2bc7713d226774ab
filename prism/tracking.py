"""MLflow, behind a few functions that log a research run's provenance automatically.

Every run carries its parameters, metrics, the equity plot, the hash of the bars it used, the
git commit (and whether the tree was dirty), the settings' hash, and the strategy as a pyfunc
model. The executed notebook is attached by :func:`finish_run` once papermill is done.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import polars as pl
from mlflow.tracking import MlflowClient

from prism.backtest import BacktestResult, report
from prism.config import Settings, export_service_environment, project_root
from prism.data.bars import BAR_COLUMNS, close_panel
from prism.errors import ConfigError
from prism.plots import save_equity_png
from prism.strategies import Strategy, strategy_params
from prism.strategy_model import StrategyModel
from prism.tearsheet import tear_sheet, write_tear_sheet, write_tear_sheet_png

MODEL_ARTIFACT = "model"
MODEL_URI_TAG = "prism.model_uri"
PIP_REQUIREMENTS = ["mlflow", "pandas", "numpy", "prism-quant"]


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment; return the experiment id."""
    export_service_environment(settings)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is None:
        try:
            experiment_id = mlflow.create_experiment(
                settings.experiment, artifact_location=settings.mlflow_artifact_uri
            )
        except mlflow.exceptions.MlflowException:
            experiment_id = _experiment_id(settings.experiment)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def _experiment_id(name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"MLflow has no experiment {name!r} and could not create it")
    return str(experiment.experiment_id)


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


def data_hash(bars: pd.DataFrame) -> str:
    """Return a SHA-256 of the bars' content (sorted, canonical CSV), to pin the data a run used."""
    canonical = pl.from_pandas(bars[BAR_COLUMNS].sort_values(["symbol", "timeframe", "time"]))
    return hashlib.sha256(canonical.write_csv().encode()).hexdigest()


def start_run(settings: Settings, source: str, params: dict[str, Any]) -> str:
    """Create a research run tagged with its provenance and return its id (left open)."""
    configure(settings)
    tags = {**git_state(), "config_hash": settings.config_hash(), "source": source}
    run = MlflowClient().create_run(
        _experiment_id(settings.experiment),
        tags=tags,
        run_name=Path(source).stem,
    )
    for key, value in params.items():
        MlflowClient().log_param(run.info.run_id, f"notebook.{key}", _param_value(value))
    return str(run.info.run_id)


def _param_value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


@contextmanager
def research_run(settings: Settings, run_id: str | None = None) -> Iterator[str]:
    """Resume the run ``run_id`` (as ``prism research run`` passes it) or start a new one."""
    configure(settings)
    tags = None if run_id else {**git_state(), "config_hash": settings.config_hash()}
    with mlflow.start_run(run_id=run_id or None, tags=tags) as run:
        yield str(run.info.run_id)


def log_backtest(
    strategy: Strategy, bars: pd.DataFrame, result: BacktestResult, symbols: list[str]
) -> dict[str, float]:
    """Log a backtest into the active run: parameters, metrics, plot, data hash and model."""
    metrics = report(result, str(bars["timeframe"].iloc[0]))
    mlflow.log_params(
        {
            "strategy": strategy.name,
            **{f"strategy.{k}": v for k, v in strategy_params(strategy).items()},
            "symbols": ",".join(symbols),
            "start": str(bars["time"].min().date()),
            "end": str(bars["time"].max().date()),
            "capital": result.config.capital,
            "commission_bps": result.config.commission_bps,
            "slippage_bps": result.config.slippage_bps,
            "data_hash": data_hash(bars),
            "n_bars": len(bars),
        }
    )
    mlflow.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as folder:
        png = save_equity_png(
            result.equity,
            f"{strategy.name} on {', '.join(symbols)}",
            Path(folder) / "equity_curve.png",
        )
        mlflow.log_artifact(str(png))
        trades = Path(folder) / "trades.csv"
        result.trades.to_csv(trades, index=False)
        mlflow.log_artifact(str(trades))
        benchmark = close_panel(bars).mean(axis=1).reindex(result.equity.index).ffill()
        sheet = tear_sheet(
            result.equity, benchmark, result.trades, f"{strategy.name} on {', '.join(symbols)}"
        )
        mlflow.log_artifact(
            str(write_tear_sheet(sheet, result.trades, Path(folder) / "tear_sheet.html"))
        )
        picture = write_tear_sheet_png(sheet, Path(folder) / "tear_sheet.png")
        if picture is not None:
            mlflow.log_artifact(str(picture))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=StrategyModel(strategy.name, strategy_params(strategy)),
            pip_requirements=PIP_REQUIREMENTS,
        )
    mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return metrics


def finish_run(run_id: str, executed_notebook: Path | None, failed: bool) -> None:
    """Attach the executed notebook to the run and mark it finished or failed."""
    client = MlflowClient()
    if executed_notebook is not None and executed_notebook.exists():
        client.log_artifact(run_id, str(executed_notebook), artifact_path="notebook")
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
