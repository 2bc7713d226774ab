"""``prism backtest`` and ``prism sweep``: in-process backtests and parameter sweeps, without
MLflow.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prism.cli.common import (
    AllowGaps,
    End,
    Start,
    check_span,
    console,
    errors,
    folding_table,
    quality_gate,
    sample_warning,
    strict_json,
    symbol_list,
)
from prism.core.errors import ConfigError
from prism.core.settings import load_settings

if TYPE_CHECKING:
    import pandas as pd

    from prism.backtest.engine import BacktestConfig


def parse_assignments(pairs: list[str]) -> dict[str, object]:
    """Return ``{key: value}`` from ``key=value`` strings, values read as Python literals."""
    from prism.core.text import read_literal

    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected --param key=value, got {pair!r}")
        parsed[key.strip()] = read_literal(text)
    return parsed


Cash = Annotated[float | None, typer.Option(help="starting capital [PRISM_CAPITAL]")]
CommissionBps = Annotated[
    float | None, typer.Option(help="commission, bps of notional [PRISM_COMMISSION_BPS]")
]
CommissionPerShare = Annotated[
    float | None, typer.Option(help="commission per share [PRISM_COMMISSION_PER_SHARE]")
]
SlippageBps = Annotated[
    float | None, typer.Option(help="slippage, bps of price [PRISM_SLIPPAGE_BPS]")
]
Rebalance = Annotated[
    str | None,
    typer.Option(help="band: trade back when drifting past --band; change: only on a new target"),
]
Band = Annotated[float | None, typer.Option(help="drift allowed, fraction of equity")]
Lot = Annotated[float | None, typer.Option(help="quantities in whole multiples of this")]
SizeAt = Annotated[str | None, typer.Option(help="size orders at: decision or fill")]
FillAt = Annotated[str | None, typer.Option(help="fill at the next bar's open or this close")]
Leverage = Annotated[float | None, typer.Option(help="cap on the sum of |weights|")]


def account_options(
    cash: float | None,
    commission_bps: float | None,
    commission_per_share: float | None,
    slippage_bps: float | None,
    rebalance: str | None,
    band: float | None,
    lot: float | None,
    size_at: str | None,
    fill_at: str | None,
    leverage: float | None,
) -> BacktestConfig:
    """Return the backtest config the account options ask for, the rest from the settings."""
    from prism.backtest.engine import backtest_config

    return backtest_config(
        load_settings(),
        capital=cash,
        commission_bps=commission_bps,
        commission_per_share=commission_per_share,
        slippage_bps=slippage_bps,
        rebalance=rebalance,
        band=band,
        lot=lot,
        size_at=size_at,
        fill_at=fill_at,
        max_leverage=leverage,
    )


def gated_bars(
    names: list[str], start: str | None, end: str | None, timeframe: str, allow_gaps: bool
) -> pd.DataFrame:
    """Return the stored bars a backtest or sweep runs on, after the data-quality gate."""
    from prism.data.store import read_bars
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    bars = read_bars(engine, names, start, end, timeframe)
    quality_gate(engine, names, timeframe, start, end, allow_gaps)
    return bars


def backtest_command(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `prism strategies`)")],
    symbols: Annotated[str, typer.Option(help="comma-separated symbols")] = "SPX,NDX",
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    start: Start = None,
    end: End = None,
    param: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    cash: Cash = None,
    commission_bps: CommissionBps = None,
    commission_per_share: CommissionPerShare = None,
    slippage_bps: SlippageBps = None,
    rebalance: Rebalance = None,
    band: Band = None,
    lot: Lot = None,
    size_at: SizeAt = None,
    fill_at: FillAt = None,
    leverage: Leverage = None,
    trades: Annotated[Path | None, typer.Option(help="write every fill here (.csv)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    allow_gaps: AllowGaps = False,
) -> None:
    """Backtest a strategy on stored bars and print its metrics (no MLflow run); bars with
    open gaps or a stale feed are refused unless --allow-gaps. Capital and costs default to
    the settings; --rebalance change --lot 1 --size-at fill --slippage-bps 0 trades as
    backtesting.py and vectorbt's from_signals do."""
    from prism.backtest.engine import report, run_backtest
    from prism.strategies import make_strategy, strategy_params

    check_span(start, end)
    chosen = make_strategy(strategy, parse_assignments(param or []))
    names = symbol_list(symbols)
    bars = gated_bars(names, start, end, timeframe, allow_gaps)
    config = account_options(
        cash,
        commission_bps,
        commission_per_share,
        slippage_bps,
        rebalance,
        band,
        lot,
        size_at,
        fill_at,
        leverage,
    )
    result = run_backtest(bars, chosen, config)
    if trades is not None:
        result.trades.to_csv(trades, index=False)
    figures = report(result, timeframe)
    figures["trades"] = int(figures.pop("n_trades"))
    warning = sample_warning(int(bars["time"].nunique()))
    if as_json:
        span = {"start": bars["time"].min(), "end": bars["time"].max(), "bars": len(bars)}
        print(
            strict_json(
                {
                    "strategy": strategy,
                    "parameters": strategy_params(chosen),
                    "symbols": names,
                    "timeframe": timeframe,
                    "span": span,
                    "allow_gaps": allow_gaps,
                    **figures,
                    "warnings": [warning] if warning else [],
                }
            )
        )
        return
    table = folding_table("metric", "value")
    for key, value in figures.items():
        shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}"
        table.add_row(key, shown)
    console.print(table)
    if warning:
        errors.print(f"[yellow]warning:[/] {warning}")


def sweep_command(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `prism strategies`)")],
    grid: Annotated[
        list[str], typer.Option(help="axis: name=v1,v2,... or name=start..stop[:step]")
    ],
    where: Annotated[list[str] | None, typer.Option(help="filter, e.g. fast<slow")] = None,
    symbols: Annotated[str, typer.Option(help="comma-separated symbols")] = "SPX,NDX",
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    start: Start = None,
    end: End = None,
    param: Annotated[list[str] | None, typer.Option(help="fixed key=value, repeatable")] = None,
    cash: Cash = None,
    commission_bps: CommissionBps = None,
    commission_per_share: CommissionPerShare = None,
    slippage_bps: SlippageBps = None,
    rebalance: Rebalance = None,
    band: Band = None,
    lot: Lot = None,
    size_at: SizeAt = None,
    fill_at: FillAt = None,
    leverage: Leverage = None,
    top: Annotated[int, typer.Option(help="rows to print, best Sharpe first")] = 10,
    out: Annotated[Path | None, typer.Option(help="write the whole table here (.csv)")] = None,
    allow_gaps: AllowGaps = False,
) -> None:
    """Backtest every combination of a parameter grid in parallel (threads here, or the Dask
    cluster at PRISM_DASK_ADDRESS) and print the best, with its deflated Sharpe ratio. An
    sma_crossover sweep of one symbol with --rebalance change --size-at fill runs fused on
    this machine's cores (shared averages, one pass per combination)."""
    from rich.progress import Progress

    from prism.backtest.sweep import MOST_COMBINATIONS, best, grid_combinations, run_sweep

    check_span(start, end)
    axes, combos = grid_combinations(grid, where or [], MOST_COMBINATIONS)
    names = symbol_list(symbols)
    bars = gated_bars(names, start, end, timeframe, allow_gaps)
    config = account_options(
        cash,
        commission_bps,
        commission_per_share,
        slippage_bps,
        rebalance,
        band,
        lot,
        size_at,
        fill_at,
        leverage,
    )
    with Progress(console=errors, transient=True) as progress:
        task = progress.add_task(f"{strategy}: {len(combos):,} combinations", total=len(combos))
        table = run_sweep(
            bars,
            strategy,
            combos,
            config,
            fixed=parse_assignments(param or []),
            on_progress=lambda n: progress.advance(task, n),
        )
    if out is not None:
        table.to_csv(out, index=False)
    winner = best(table)
    shown = folding_table(*axes, "sharpe", "total_return", "max_drawdown", "n_trades")
    for row in table.sort_values("sharpe", ascending=False).head(top).itertuples():
        shown.add_row(
            *(str(getattr(row, name)) for name in axes),
            f"{row.sharpe:.3f}",
            f"{row.total_return:.2%}",
            f"{row.max_drawdown:.2%}",
            f"{row.n_trades:,.0f}",
        )
    console.print(shown)
    console.print(
        f"best of {winner['trials']:,} trials: Sharpe {winner['sharpe']:.3f}, deflated Sharpe "
        f"ratio {winner['deflated_sharpe']:.3f} (the probability its true Sharpe beats the "
        "best that luck alone would give)"
    )
