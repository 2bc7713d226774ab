"""Parameter sweeps: one strategy over a grid of parameters, on bars pivoted once.

The grid is cut into chunks, and each chunk is a task for an executor: threads on this machine
by default (the compiled loop releases the GIL), or a Dask cluster when ``PRISM_DASK_ADDRESS``
names a scheduler, so a large sweep can leave this machine. Every combination gets the same
headline metrics; :func:`best` adds the deflated Sharpe ratio of the winner given how many
combinations were tried, because the best of many backtests is flattered by the search.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from prism.backtest.engine import BacktestConfig, simulate, strategy_weights
from prism.backtest.fused import sma_crossover_sweep
from prism.backtest.metrics import PERIODS_PER_YEAR
from prism.backtest.validation import deflated_sharpe_ratio
from prism.core.errors import ConfigError
from prism.core.settings import load_settings
from prism.core.text import read_literal
from prism.data.bars import BarPanel
from prism.strategies import SmaCrossover, available_strategies, make_strategy

Combination = dict[str, Any]


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """Parse ``name=v1,v2,...`` or ``name=start..stop[:step]`` (integers, stop included)."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise ConfigError(f"grid axis {text!r} is not name=v1,v2,... or name=start..stop[:step]")
    if ".." in values:
        span, _, step = values.partition(":")
        first, _, last = span.partition("..")
        try:
            return name, list(range(int(first), int(last) + 1, int(step or 1)))
        except ValueError as err:
            raise ConfigError(f"grid axis {text!r}: a range needs whole numbers") from err
    return name, [read_literal(v) for v in values.split(",")]


def axis_length(text: str) -> int:
    """Return how many values a grid axis (``name=v1,v2`` or ``name=a..b[:step]``) holds,
    without building them (``parse_axis`` names what is wrong with a malformed one)."""
    values = text.partition("=")[2]
    if ".." not in values:
        return len(values.split(","))
    span, _, step = values.partition(":")
    first, _, last = span.partition("..")
    try:
        return len(range(int(first), int(last) + 1, int(step or 1)))
    except ValueError:
        return 0


def check_grid_size(grid: list[str], most: int) -> None:
    """Refuse a grid of more than ``most`` combinations before it is expanded."""
    size = 1
    for axis in grid:
        size *= axis_length(axis)
        if size > most:
            raise ConfigError(
                f"the grid {' '.join(grid)} has more than {most:,} combinations; narrow it"
            )


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}


def parse_condition(text: str) -> Callable[[Combination], bool]:
    """Parse a grid filter such as ``fast<slow`` or ``width>=1.5``: each side a parameter name
    or a number, joined by one of < <= > >= == !=."""
    for symbol, compare in _COMPARISONS.items():
        left, sep, right = text.partition(symbol)
        if sep and left.strip() and right.strip():
            a, b = left.strip(), right.strip()

            def keep(combo: Combination, a: str = a, b: str = b, op: Any = compare) -> bool:
                x, y = combo.get(a, read_literal(a)), combo.get(b, read_literal(b))
                try:
                    return bool(op(x, y))
                except TypeError:
                    raise ConfigError(
                        f"filter {text!r} compares {x!r} with {y!r}; each side must be a grid "
                        f"axis ({', '.join(combo)}) or a number"
                    ) from None

            return keep
    raise ConfigError(
        f"filter {text!r} is not 'name OP name-or-number' with OP one of < <= > >= == !="
    )


def expand_grid(
    axes: Mapping[str, Sequence[Any]], keep: Callable[[Combination], bool] | None = None
) -> list[Combination]:
    """Return every combination of the axes' values that ``keep`` accepts, in grid order."""
    names = list(axes)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]
    return [c for c in combos if keep is None or keep(c)]


MOST_COMBINATIONS = 1_000_000
"""The largest grid ``prism sweep`` expands: a million result rows of metrics is about a GB."""


def grid_combinations(
    grid: Sequence[str], where: Sequence[str], most: int
) -> tuple[dict[str, list[Any]], list[Combination]]:
    """Parse the ``grid`` axes and ``where`` filters (``prism sweep``'s and the API's); return
    the axes and the combinations every filter keeps. A grid of more than ``most`` combinations
    is refused before it is expanded, and so is one that no combination passes."""
    check_grid_size(list(grid), most)
    axes = dict(parse_axis(axis) for axis in grid)
    filters = [parse_condition(text) for text in where]
    combos = expand_grid(axes, lambda combo: all(keep(combo) for keep in filters))
    if not combos:
        raise ConfigError(
            f"the grid is empty: no combination passed the filters {', '.join(where)}"
        )
    return axes, combos


@dataclass(frozen=True)
class SweepJob:
    """What every chunk needs: the bars, the strategy's name and fixed parameters, the costs."""

    panel: BarPanel
    bars: pd.DataFrame | None
    strategy: str
    fixed: Mapping[str, Any]
    config: BacktestConfig
    periods_per_year: float


def evaluate(job: SweepJob, combos: Sequence[Combination]) -> list[dict[str, Any]]:
    """Backtest each combination on the job's panel; return its parameters and metrics.

    A combination the strategy rejects (a ConfigError) gets its reason in ``error``.
    """
    rows = []
    for combo in combos:
        try:
            strategy = make_strategy(job.strategy, {**job.fixed, **combo})
        except ConfigError as err:
            rows.append({**combo, "error": str(err)})
            continue
        run = simulate(job.panel, strategy_weights(strategy, job.panel, job.bars), job.config)
        rows.append({**combo, **_metrics(run.equity, len(run.fills), job.periods_per_year)})
    return rows


def _metrics(equity: np.ndarray, n_trades: int, periods_per_year: float) -> dict[str, float]:
    return _figures(
        curve_moments(equity), equity[0], equity[-1], n_trades, equity.size - 1, periods_per_year
    )


def _figures(
    moments: tuple[float, float, float, float, float],
    first: float,
    last: float,
    n_trades: int,
    n_obs: int,
    periods_per_year: float,
) -> dict[str, float]:
    mean, std, skew, kurtosis, drawdown = moments
    sharpe = mean / std if std > 0 else math.nan
    return {
        "total_return": float(last / first - 1.0),
        "sharpe": float(sharpe * math.sqrt(periods_per_year)),
        "max_drawdown": float(drawdown),
        "n_trades": float(n_trades),
        "final_equity": float(last),
        "bar_sharpe": float(sharpe),
        "skew": float(skew),
        "kurtosis": float(kurtosis),
        "n_obs": float(n_obs),
    }


def moments_from_sums(
    n: int, s1: float, s2: float, s3: float, s4: float, drawdown: float
) -> tuple[float, float, float, float, float]:
    """Return :func:`curve_moments`'s figures from the sums of ``n`` returns and of their
    squares, cubes and fourth powers (one pass instead of two; equal to rounding)."""
    mean = s1 / n if n > 0 else math.nan
    m2 = s2 - n * mean * mean
    if n < 2 or m2 <= 0.0:
        return mean, 0.0, math.nan, math.nan, drawdown
    m3 = s3 - 3.0 * mean * s2 + 2.0 * n * mean**3
    m4 = s4 - 4.0 * mean * s3 + 6.0 * mean * mean * s2 - 3.0 * n * mean**4
    variance = m2 / n
    return (
        mean,
        math.sqrt(m2 / (n - 1)),
        (m3 / n) / variance**1.5,
        (m4 / n) / variance**2,
        drawdown,
    )


def fused_sma_sweep(job: SweepJob, combos: Sequence[Combination]) -> list[dict[str, Any]] | None:
    """Return the rows of an SMA-crossover sweep from the fused parallel loop
    (:mod:`prism.backtest.fused`), or None when the job is not one it computes: one symbol
    with a bar at every step, trading on target changes sized and filled at the next open."""
    config, panel = job.config, job.panel
    fitting = (
        job.strategy == "sma_crossover"
        and config.rebalance == "change"
        and config.size_at == "fill"
        and config.fill_at == "open"
        and len(panel.symbols) == 1
        and len(panel.times) > 1
        and bool(np.all(panel.open > 0) and np.all(panel.close > 0))
    )
    if not fitting:
        return None
    rows: list[dict[str, Any] | None] = []
    chosen: list[SmaCrossover] = []
    for combo in combos:
        try:
            strategy = make_strategy(job.strategy, {**job.fixed, **combo})
        except ConfigError as err:
            rows.append({**combo, "error": str(err)})
            continue
        if not isinstance(strategy, SmaCrossover) or strategy.on_cross:
            return None
        if chosen and strategy.allow_short != chosen[0].allow_short:
            return None
        chosen.append(strategy)
        rows.append(None)
    if not chosen:
        return [row for row in rows if row is not None]
    out = sma_crossover_sweep(
        panel.open[:, 0],
        panel.close[:, 0],
        np.array([s.fast for s in chosen]),
        np.array([s.slow for s in chosen]),
        config.capital,
        np.array(
            [config.commission_bps, config.commission_per_share, config.slippage_bps, config.lot]
        ),
        min(1.0, config.max_leverage),
        chosen[0].allow_short,
    )
    n_obs = len(panel.times) - 1
    results = iter(out)
    table = []
    for combo, row in zip(combos, rows, strict=True):
        if row is not None:
            table.append(row)
            continue
        last, first, fills, s1, s2, s3, s4, drawdown = next(results)
        moments = moments_from_sums(n_obs, s1, s2, s3, s4, drawdown)
        table.append(
            {**combo, **_figures(moments, first, last, int(fills), n_obs, job.periods_per_year)}
        )
    return table


@njit(cache=True, nogil=True)
def curve_moments(equity: np.ndarray) -> tuple[float, float, float, float, float]:
    """Return the mean, sample standard deviation, skewness and plain kurtosis of an equity
    curve's simple returns, and its maximum drawdown, in two passes (a sweep's per-combination
    statistics; :mod:`prism.backtest.metrics` holds the reference definitions the tests compare)."""
    n = equity.size - 1
    total = 0.0
    peak = equity[0]
    drawdown = 0.0
    for t in range(1, equity.size):
        total += equity[t] / equity[t - 1] - 1.0
        peak = max(peak, equity[t])
        drawdown = max(drawdown, 1.0 - equity[t] / peak)
    mean = total / n if n > 0 else math.nan
    m2 = m3 = m4 = 0.0
    for t in range(1, equity.size):
        d = equity[t] / equity[t - 1] - 1.0 - mean
        m2 += d * d
        m3 += d * d * d
        m4 += d * d * d * d
    if n < 2 or m2 == 0.0:
        return mean, 0.0, math.nan, math.nan, drawdown
    std = math.sqrt(m2 / (n - 1))
    variance = m2 / n
    return mean, std, (m3 / n) / variance**1.5, (m4 / n) / variance**2, drawdown


def run_sweep(
    bars: pd.DataFrame,
    strategy: str,
    combos: Sequence[Combination],
    config: BacktestConfig,
    fixed: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    chunk_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Backtest ``strategy`` once per combination over ``bars``; one row per combination.

    ``executor`` runs the chunks (default: :func:`sweep_executor`); ``on_progress`` is called
    with the number of combinations each finished chunk held.
    """
    if not combos:
        raise ConfigError("the grid is empty: no combination passed the filter")
    timeframe = str(bars["timeframe"].iloc[0]) if len(bars) else "1d"
    panel = BarPanel.from_bars(bars)
    strategies = available_strategies()
    if strategy not in strategies:
        raise ConfigError(
            f"unknown strategy {strategy!r}; available: {', '.join(sorted(strategies))}"
        )
    job = SweepJob(
        panel=panel,
        bars=None if hasattr(strategies[strategy], "panel_weights") else bars,
        strategy=strategy,
        fixed=dict(fixed or {}),
        config=config,
        periods_per_year=PERIODS_PER_YEAR.get(timeframe, 252),
    )
    fused = fused_sma_sweep(job, combos) if executor is None else None
    if fused is not None:
        if on_progress:
            on_progress(len(combos))
        return pd.DataFrame(fused)
    size = chunk_size or max(1, math.ceil(len(combos) / (4 * (os.cpu_count() or 1))))
    chunks = [combos[k : k + size] for k in range(0, len(combos), size)]
    done: dict[int, list[dict[str, Any]]] = {}
    with _executor(executor) as pool:
        futures = {pool.submit(evaluate, job, chunk): k for k, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if on_progress:
                on_progress(len(done[futures[future]]))
    return pd.DataFrame([row for k in range(len(chunks)) for row in done[k]])


@contextmanager
def _executor(given: Executor | None) -> Iterator[Executor]:
    if given is not None:
        yield given
        return
    with sweep_executor() as pool:
        yield pool


@contextmanager
def sweep_executor(address: str | None = None) -> Iterator[Executor]:
    """Yield the executor sweeps run on: a Dask cluster's when ``address`` (default
    ``PRISM_DASK_ADDRESS``) names a scheduler, else a thread per core on this machine."""
    address = address or load_settings().dask_address
    if not address:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            yield pool
        return
    # Imported here: dask.distributed (2.5 s to import) only when a cluster address is set.
    from distributed import Client

    with Client(address) as client:
        yield client.get_executor()


def best(table: pd.DataFrame, metric: str = "sharpe") -> dict[str, Any]:
    """Return the best row by ``metric`` with its deflated Sharpe ratio, given every trial."""
    valid = table.dropna(subset=["bar_sharpe"])
    if valid.empty:
        raise ConfigError("no combination produced a Sharpe ratio (all flat or rejected)")
    k = int(np.argmax(valid[metric].to_numpy()))
    top: dict[str, Any] = {column: valid[column].iloc[k] for column in valid.columns}
    top["trials"] = len(table)
    top["deflated_sharpe"] = deflated_sharpe_ratio(
        sharpe=top["bar_sharpe"],
        n_obs=int(top["n_obs"]),
        skew=top["skew"],
        kurtosis=top["kurtosis"],
        sharpe_variance=float(valid["bar_sharpe"].var(ddof=1)) if len(valid) > 1 else 0.0,
        n_trials=len(table),
    )
    return top
