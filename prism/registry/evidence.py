"""The evidence a promotion judges, recomputed rather than read from what the run says of itself.

A run's tags and metrics are written by the notebook that made it, so any notebook could write
``prism.lookahead_check = passed`` or a better Sharpe ratio. :func:`recompute` therefore works
from the run's artifacts and the stored bars:

- the logged model is loaded and its strategy rebuilt (its code must be the code it was logged
  with, :meth:`~prism.strategies.pyfunc.StrategyModel.code_problems`);
- the bars the run used are read from the database again and must hash to the run's data hash;
- the model is backtested on them with the run's configuration, and the equity curve must be the
  one the run logged (``equity.parquet``);
- the gated metrics are computed from the logged equity curve and trades (``trades.parquet``) and
  compared with the metrics the run logged;
- the look-ahead check (weights recomputed on history cut at a few bars) and the backtest/live
  parity check (the strategy called bar by bar) are run on the model and the stored bars;
- the git state the run was made from and whether its bars have open gaps are read for the
  clean-tree and data gates (gaps are searched in the database again).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from prism.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from prism.backtest.metrics import PERIODS_PER_YEAR, summary
from prism.backtest.validation import Violation, look_ahead_violations
from prism.core.errors import DataUnavailable, PrismError
from prism.data.gaps import find_gaps
from prism.data.store import read_bars
from prism.registry.gates import RECOMPUTED, Mismatch, Recomputed
from prism.research.data_gate import ALLOW_GAPS_TAG
from prism.research.evaluation import curve_metrics, look_ahead_cuts, parity_passes
from prism.research.tracking import (
    BACKTEST_CONFIG_PARAM,
    DATA_END_TAG,
    DATA_HASH_TAG,
    DATA_START_TAG,
    EQUITY_ARTIFACT,
    MODEL_URI_TAG,
    PARITY_BARS,
    PARITY_BARS_PARAM,
    TRADES_ARTIFACT,
    data_hash,
)
from prism.strategies import Strategy
from prism.strategies.pyfunc import StrategyModel

RELATIVE_TOLERANCE = 1e-9
EQUITY_TOLERANCE = 1e-7
"""Relative tolerance between the logged equity curve and a fresh backtest's."""


def _same(a: float | None, b: float) -> bool:
    if a is None:
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def metric_mismatches(logged: dict[str, float], recomputed: dict[str, float]) -> list[Mismatch]:
    """Return each recomputed metric whose logged value is missing or differs."""
    return [
        Mismatch(name, logged.get(name), value)
        for name, value in recomputed.items()
        if not _same(logged.get(name), value)
    ]


def gated_metrics(
    equity: pd.Series, trades: pd.DataFrame, timeframe: str, split: pd.Timestamp | None
) -> dict[str, float]:
    """Return :data:`RECOMPUTED` of an equity curve (float64 Series indexed by bar time,
    UTC) and its trades (a frame with a ``time`` column, UTC), split out of sample at
    ``split`` (no ``oos_*`` without one)."""
    whole = summary(equity, len(trades), PERIODS_PER_YEAR.get(timeframe, 252))
    metrics = {name: float(whole[name]) for name in ("sharpe", "max_drawdown", "n_trades")}
    if split is not None:
        oos = curve_metrics(equity, trades, timeframe, "oos_", start=split)
        metrics.update({name: oos[name] for name in RECOMPUTED if name in oos})
    return metrics


def _download(client: MlflowClient, run_id: str, name: str, folder: Path) -> pd.DataFrame | None:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            path = client.download_artifacts(run_id, name, str(folder))
    except (MlflowException, OSError):
        return None
    return pd.read_parquet(path)


def _config(params: dict[str, str]) -> BacktestConfig:
    raw = params.get(BACKTEST_CONFIG_PARAM)
    if raw:
        return BacktestConfig(**json.loads(raw))
    return BacktestConfig(
        capital=float(params.get("capital", 1_000_000.0)),
        commission_bps=float(params.get("commission_bps", 1.0)),
        slippage_bps=float(params.get("slippage_bps", 2.0)),
    )


def _split(params: dict[str, str]) -> pd.Timestamp | None:
    raw = params.get("oos_start_time") or params.get("oos_start")
    if not raw:
        return None
    stamp = pd.Timestamp(raw)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def load_logged_model(run_tags: dict[str, str]) -> tuple[StrategyModel | None, str]:
    """Return the run's logged strategy model (None and why when it cannot be loaded)."""
    uri = run_tags.get(MODEL_URI_TAG)
    if not uri:
        return None, "the run logged no strategy model (tag prism.model_uri)"
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = mlflow.pyfunc.load_model(uri)
        model: Any = loaded.unwrap_python_model()
    except (MlflowException, OSError, PrismError) as err:
        return None, f"its model {uri} cannot be loaded: {str(err).splitlines()[0]}"
    if not isinstance(model, StrategyModel):
        return None, f"its model {uri} is not a Prism strategy model"
    return model, ""


def stored_bars(
    engine: Engine, params: dict[str, str], tags: dict[str, str]
) -> tuple[pd.DataFrame | None, str]:
    """Return the stored bars the run used (None and why when they are not those it hashed)."""
    symbols = [s for s in params.get("symbols", "").split(",") if s]
    timeframe = params.get("timeframe") or params.get("notebook.timeframe") or "1d"
    start, end = tags.get(DATA_START_TAG), tags.get(DATA_END_TAG)
    if not symbols or not start or not end:
        return None, "the run records no symbols or data span (params symbols, tags prism.data_*)"
    try:
        bars = read_bars(engine, symbols, start, end, timeframe)
    except DataUnavailable as err:
        return None, f"the bars it used are no longer stored: {err}"
    expected = tags.get(DATA_HASH_TAG) or params.get("data_hash", "")
    found = data_hash(bars)
    if found != expected:
        return None, (
            f"the stored bars of {','.join(symbols)} {timeframe} {start} .. {end} hash to "
            f"{found[:12]}, not the run's {expected[:12] or '(none)'}: the data changed since "
            "the run; re-run it on the stored bars"
        )
    return bars, ""


def _equity_problem(logged: pd.Series, fresh: BacktestResult) -> str:
    ours = fresh.equity
    if len(logged) != len(ours) or not (logged.index == ours.index).all():
        return (
            f"the logged equity curve ({len(logged)} bars) is not on the bars of the model's "
            f"backtest ({len(ours)} bars)"
        )
    close = np.isclose(logged.to_numpy(), ours.to_numpy(), rtol=EQUITY_TOLERANCE, atol=0.0)
    if not close.all():
        first = logged.index[~close][0]
        return (
            "the logged equity curve is not what the model's backtest on the stored bars gives "
            f"(first difference at {pd.Timestamp(first).isoformat()})"
        )
    return ""


def _gaps(engine: Engine, bars: pd.DataFrame) -> tuple[str, ...]:
    found = find_gaps(
        engine,
        sorted(bars["symbol"].unique()),
        str(bars["timeframe"].iloc[0]),
        pd.Timestamp(bars["time"].min()).to_pydatetime(),
        pd.Timestamp(bars["time"].max()).to_pydatetime(),
    )
    return tuple(f"{g.symbol} {g.start.date()}..{g.end.date()} ({g.missing} bars)" for g in found)


def recompute(client: MlflowClient, run_id: str, engine: Engine) -> Recomputed:
    """Return the evidence of run ``run_id`` recomputed from its model, its logged equity and
    trades and the stored bars (see the module docstring)."""
    run = client.get_run(run_id)
    tags, params = dict(run.data.tags), dict(run.data.params)
    base = Recomputed(
        problems=(),
        git_dirty=tags.get("git_dirty", "unknown"),
        allow_gaps=tags.get(ALLOW_GAPS_TAG) == "true"
        or params.get("notebook.allow_gaps", "").lower() == "true",
    )
    model, why = load_logged_model(tags)
    if model is None:
        return _with(base, problems=(why,))
    base = _with(base, code_sha256=model.code_sha256)
    code = model.code_problems()
    if code:
        return _with(base, problems=tuple(code))
    bars, why = stored_bars(engine, params, tags)
    if bars is None:
        return _with(base, problems=(why,))
    strategy: Strategy = model.build()
    base = _with(base, gaps=_gaps(engine, bars))
    config = _config(params)
    parity_window = int(params.get("notebook.parity_bars") or params.get(PARITY_BARS_PARAM) or 0)
    violations = look_ahead_violations(strategy, bars, look_ahead_cuts(bars))
    parity = parity_passes(strategy, bars, config, parity_window or PARITY_BARS)
    base = _with(base, lookahead=tuple(violations), parity=parity)
    with tempfile.TemporaryDirectory() as folder:
        equity_frame = _download(client, run_id, EQUITY_ARTIFACT, Path(folder))
        trades = _download(client, run_id, TRADES_ARTIFACT, Path(folder))
    if equity_frame is None or trades is None:
        return _with(
            base,
            problems=(
                f"the run logged no {EQUITY_ARTIFACT} or {TRADES_ARTIFACT} to recompute its "
                "metrics from; log backtests with prism.research.tracking.log_backtest",
            ),
        )
    equity = equity_frame.set_index("time")["equity"].astype("float64")
    problem = _equity_problem(equity, run_backtest(bars, strategy, config))
    if problem:
        return _with(base, problems=(problem,))
    metrics = gated_metrics(equity, trades, str(bars["timeframe"].iloc[0]), _split(params))
    mismatches = metric_mismatches(dict(run.data.metrics), metrics)
    return _with(base, metrics=metrics, mismatches=tuple(mismatches))


def _with(evidence: Recomputed, **changes: Any) -> Recomputed:
    return replace(evidence, **changes)


def lookahead_table(violations: tuple[Violation, ...], limit: int = 20) -> pd.DataFrame:
    """Return the look-ahead violations as a table: cut, time, symbol, the weight on the full
    history and on history cut at ``cut`` (the first ``limit`` rows)."""
    rows = [
        {
            "cut": v.cut.isoformat(),
            "time": v.time.isoformat(),
            "symbol": v.symbol,
            "full history": v.full_history,
            "cut history": v.cut_history,
        }
        for v in violations[:limit]
    ]
    return pd.DataFrame(rows, columns=["cut", "time", "symbol", "full history", "cut history"])
