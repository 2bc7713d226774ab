"""The Research page: a leaderboard of recent MLflow runs by a chosen metric."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from prism.core.settings import Settings
from prism.monitoring.mlflow_reader import client, run_link

LOWER_IS_BETTER = frozenset(
    {
        "max_drawdown",
        "oos_max_drawdown",
        "annual_volatility",
        "volatility",
        "max_drawdown_duration",
        "trials",
    }
)
"""Metrics where the best run has the smallest value; every other metric ranks descending."""
SHOWN_METRICS = ("sharpe", "oos_sharpe", "max_drawdown", "total_return", "n_trades")
COLUMNS = [
    "rank",
    "run_id",
    "experiment",
    "run_name",
    "started",
    "status",
    "metric",
    *SHOWN_METRICS,
    "notebook",
    "git_commit",
    "link",
]
SEARCHED = 500
"""Newest runs looked at for metric names and ranking."""


def _runs(settings: Settings) -> list[tuple[str, object]]:
    mlflow = client(settings)
    if mlflow is None:
        return []
    experiments = {e.experiment_id: e.name for e in mlflow.search_experiments()}
    if not experiments:
        return []
    runs = mlflow.search_runs(
        list(experiments), order_by=["attributes.start_time DESC"], max_results=SEARCHED
    )
    return [(experiments[r.info.experiment_id], r) for r in runs]


def metric_names(settings: Settings) -> list[str]:
    """Return every metric logged by the newest runs, ``sharpe`` first when present."""
    names = {key for _, run in _runs(settings) for key in run.data.metrics}  # type: ignore[attr-defined]
    return sorted(names, key=lambda n: (n != "sharpe", n))


def leaderboard(settings: Settings, metric: str, limit: int = 25) -> pd.DataFrame:
    """Return the best ``limit`` of the newest runs that logged ``metric`` (ascending for
    :data:`LOWER_IS_BETTER`, else descending): rank, run_id, experiment, run_name, started
    (UTC), status, metric (its value), the :data:`SHOWN_METRICS`, notebook, git_commit, link."""
    rows = []
    for experiment, run in _runs(settings):
        data, info = run.data, run.info  # type: ignore[attr-defined]
        if metric not in data.metrics:
            continue
        rows.append(
            {
                "run_id": info.run_id,
                "experiment": experiment,
                "run_name": info.run_name,
                "started": datetime.fromtimestamp(info.start_time / 1000, tz=UTC),
                "status": info.status,
                "metric": data.metrics[metric],
                **{m: data.metrics.get(m, float("nan")) for m in SHOWN_METRICS},
                "notebook": data.tags.get("prism.notebook") or data.tags.get("notebook"),
                "git_commit": (data.tags.get("git_commit") or "")[:10],
                "link": run_link(settings, info.experiment_id, info.run_id),
            }
        )
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    frame = frame.sort_values(
        "metric", ascending=metric in LOWER_IS_BETTER, kind="stable", ignore_index=True
    ).head(limit)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame
