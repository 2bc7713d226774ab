"""``prism strategies``, ``prism backtest`` and ``prism sweep``: the strategy library and
in-process backtests and parameter sweeps, without MLflow.

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
    pass


def strategies_command() -> None:
    """List the strategies (built in and registered by research/) with their parameters."""
    import dataclasses

    from prism.strategies import available_strategies

    table = folding_table("strategy", "parameters (default)", "what it does")
    for name, cls in sorted(available_strategies().items()):
        params = ", ".join(
            f"{f.name}" + ("" if f.default is dataclasses.MISSING else f"={f.default!r}")
            for f in dataclasses.fields(cls)
        )
        table.add_row(name, params, " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()))
    console.print(table)


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


def backtest_command(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `prism strategies`)")],
    symbols: Annotated[str, typer.Option(help="comma-separated symbols")] = "SPX,NDX",
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    start: Start = None,
    end: End = None,
    param: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    cash: Annotated[float, typer.Option(help="starting capital")] = 1_000_000.0,
    commission_bps: Annotated[float, typer.Option(help="commission, bps of notional")] = 1.0,
    slippage_bps: Annotated[float, typer.Option(help="slippage, bps of price")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    allow_gaps: AllowGaps = False,
) -> None:
    """Backtest a strategy on stored bars and print its metrics (no MLflow run); bars with
    open gaps or a stale feed are refused unless --allow-gaps."""
    from prism.backtest.engine import BacktestConfig, report, run_backtest
    from prism.data.store import read_bars
    from prism.db.engine import open_database
    from prism.strategies import make_strategy, strategy_params

    check_span(start, end)
    chosen = make_strategy(strategy, parse_assignments(param or []))
    names = symbol_list(symbols)
    engine = open_database(load_settings())
    bars = read_bars(engine, names, start, end, timeframe)
    quality_gate(engine, names, timeframe, start, end, allow_gaps)
    config = BacktestConfig(capital=cash, commission_bps=commission_bps, slippage_bps=slippage_bps)
    figures = report(run_backtest(bars, chosen, config), timeframe)
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
    cash: Annotated[float, typer.Option(help="starting capital")] = 1_000_000.0,
    commission_bps: Annotated[float, typer.Option(help="commission, bps of notional")] = 1.0,
    slippage_bps: Annotated[float, typer.Option(help="slippage, bps of price")] = 2.0,
    top: Annotated[int, typer.Option(help="rows to print, best Sharpe first")] = 10,
    out: Annotated[Path | None, typer.Option(help="write the whole table here (.csv)")] = None,
    allow_gaps: AllowGaps = False,
) -> None:
    """Backtest every combination of a parameter grid in parallel (threads here, or the Dask
    cluster at PRISM_DASK_ADDRESS) and print the best, with its deflated Sharpe ratio."""
    from rich.progress import Progress

    from prism.backtest.engine import BacktestConfig
    from prism.backtest.sweep import best, expand_grid, parse_axis, parse_condition, run_sweep
    from prism.data.store import read_bars
    from prism.db.engine import open_database

    check_span(start, end)
    axes = dict(parse_axis(axis) for axis in grid)
    filters = [parse_condition(text) for text in where or []]
    combos = expand_grid(axes, lambda combo: all(keep(combo) for keep in filters))
    names = symbol_list(symbols)
    engine = open_database(load_settings())
    bars = read_bars(engine, names, start, end, timeframe)
    quality_gate(engine, names, timeframe, start, end, allow_gaps)
    config = BacktestConfig(capital=cash, commission_bps=commission_bps, slippage_bps=slippage_bps)
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
