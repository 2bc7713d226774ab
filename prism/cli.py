"""The ``prism`` command line: configuration, database, data, research, models and the demo.

Every command reports a :class:`~prism.errors.PrismError` as one line naming the problem and the
fix, with exit code 1, instead of a traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from prism.config import describe_settings, load_gates, load_settings, mask_url
from prism.errors import ConfigError, PrismError

app = typer.Typer(
    help="Prism: notebook-first quant research with a promotion-to-production runner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="The PostgreSQL database (embedded unless PRISM_DATABASE_URL is set).",
    no_args_is_help=True,
)
data_app = typer.Typer(help="Market data.", no_args_is_help=True)
ingest_app = typer.Typer(help="Load bars into market_data.ohlcv.", no_args_is_help=True)
research_app = typer.Typer(
    help="Research notebooks run with papermill and tracked in MLflow.", no_args_is_help=True
)
models_app = typer.Typer(help="The MLflow model registry.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
data_app.add_typer(ingest_app, name="ingest")
app.add_typer(research_app, name="research")
app.add_typer(models_app, name="models")

console = Console()
errors = Console(stderr=True)


def _table(*headers: str, whole: str | None = None) -> Table:
    """Return a table that folds long values instead of cutting them; the ``whole`` column
    (an id to copy) is never broken."""
    table = Table()
    for header in headers:
        if header == whole:
            table.add_column(header, no_wrap=True, min_width=32)
        else:
            table.add_column(header, overflow="fold")
    return table


@app.command("config")
def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the effective configuration and where each value came from."""
    reports = describe_settings(load_settings(), load_gates())
    if as_json:
        print(
            json.dumps(
                {
                    r.name: {"value": r.value, "source": r.source, "description": r.description}
                    for r in reports
                },
                indent=2,
                default=str,
            )
        )
        return
    table = _table("setting", "value", "source")
    for r in reports:
        table.add_row(r.name, str(r.value), r.source)
    console.print(table)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL server (it keeps running until `prism db stop`)."""
    from prism.db import embedded

    settings = load_settings()
    if settings.database_url is not None:
        console.print(
            f"PRISM_DATABASE_URL is set ({mask_url(settings.database_url.get_secret_value())});"
            " nothing to start"
        )
        return
    console.print(f"embedded PostgreSQL running: {embedded.start(settings.pgdata)}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (also after a crashed process left it running)."""
    from prism.db import embedded

    stopped = embedded.stop(load_settings().pgdata)
    console.print("stopped" if stopped else "the embedded server was not running")


@db_app.command("status")
def db_status() -> None:
    """Say whether the database is up, and where."""
    from prism.db import embedded

    settings = load_settings()
    if settings.database_url is not None:
        from prism.db.engine import connect

        connect(settings)
        console.print(
            f"external database reachable: {mask_url(settings.database_url.get_secret_value())}"
        )
        return
    state = embedded.status(settings.pgdata)
    if state.running:
        console.print(
            f"embedded PostgreSQL running (pid {state.pid}, data {state.pgdata}, "
            f"socket {state.socket_dir})"
        )
    else:
        console.print(
            f"embedded PostgreSQL not running (data {state.pgdata}); `prism db start` starts it"
        )


@db_app.command("url")
def db_url(
    sqlalchemy: Annotated[
        bool, typer.Option("--sqlalchemy", help="print the SQLAlchemy form (postgresql+psycopg://)")
    ] = False,
) -> None:
    """Print the database URL (starting the embedded server if needed); psql accepts it."""
    from prism.db.engine import database_url, sqlalchemy_url

    url = database_url(load_settings())
    print(sqlalchemy_url(url) if sqlalchemy else url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to the newest revision."""
    from prism.db.engine import connect
    from prism.db.migrate import database_mode, upgrade

    engine = connect(load_settings())
    revision = upgrade(engine)
    console.print(f"schema at revision {revision} ({database_mode(engine)} mode)")


@ingest_app.command("bundled")
def ingest_bundled() -> None:
    """Load the daily S&P 500 (SPX) and NASDAQ (NDX) bars that ship with `arch`, 1999-2018."""
    from prism.data.sources import ArchBarSource
    from prism.data.store import ingest
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    started = time.perf_counter()
    report = ingest(engine, ArchBarSource())
    console.print(
        f"{report.source}: {report.received:,} bars received, {report.inserted:,} "
        f"inserted, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.quarantined} quarantined in {time.perf_counter() - started:.1f}s"
    )


def parse_parameters(args: list[str]) -> dict[str, str]:
    """Return ``{NAME: VALUE}`` from ``-p NAME VALUE`` pairs (papermill's own syntax)."""
    parameters: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise ConfigError(
                f"expected `-p NAME VALUE`, got {' '.join([flag, *rest[:2]])!r}; "
                "example: prism research run notebooks/backtest.ipynb -p fast 10 -p slow 50"
            )
        name, value = rest.pop(0), rest.pop(0)
        parameters[name] = value
    return parameters


@research_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def research_run(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="the notebook to execute")],
) -> None:
    """Execute a notebook with papermill as one MLflow run and print the run id.

    Parameters follow as `-p NAME VALUE`, repeatable: `-p fast 10 -p slow 50`.
    """
    from prism.research import run_notebook

    run = run_notebook(load_settings(), notebook, parse_parameters(list(ctx.args)))
    errors.print(f"executed notebook: {run.executed}")
    errors.print(", ".join(f"{k} {v:.4g}" for k, v in sorted(run.metrics.items())))
    print(run.run_id)


@models_app.command("promote")
def models_promote(
    run: Annotated[str, typer.Option("--run", help="the MLflow run id to promote")],
    approved_by: Annotated[str | None, typer.Option(help="who approves (default: you)")] = None,
) -> None:
    """Register a run's model and alias it 'champion' if it passes the promotion gates."""
    from prism.registry import promote

    result = promote(load_settings(), run, load_gates(), approved_by or getpass.getuser())
    for gate in result.gates:
        mark = "[green]pass[/]" if gate.passed else "[red]FAIL[/]"
        console.print(f"{mark} {gate.gate}: {gate.value if gate.value is not None else 'missing'}")
    if not result.promoted:
        errors.print(
            f"[red]not promoted[/]: {len(result.failed())} gate(s) failed; nothing changed"
        )
        raise typer.Exit(1)
    console.print(f"promoted {result.model_name} version {result.version} to alias 'champion'")


@models_app.command("list")
def models_list() -> None:
    """List registered model versions and their aliases."""
    from prism.registry import list_versions

    table = _table(
        "model", "version", "aliases", "run id", "registered (UTC)", "approved by", whole="run id"
    )
    for v in list_versions(load_settings()):
        table.add_row(
            v.name,
            v.version,
            ", ".join(v.aliases),
            v.run_id,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.approved_by or "",
        )
    console.print(table)


@data_app.command("indicators")
def data_indicators(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all)")] = None,
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
) -> None:
    """Compute the indicators (SMA, EMA, RSI, MACD, ATR, Bollinger, ADX) and store them."""
    from prism import indicators
    from prism.data.store import read_bars, store_indicators, stored_symbols
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    names = symbols.split(",") if symbols else stored_symbols(engine, timeframe)
    values = indicators.compute(read_bars(engine, names, timeframe=timeframe))
    written = store_indicators(engine, values, timeframe)
    console.print(
        f"{written:,} indicator values for {', '.join(names)} ({timeframe}) stored "
        "in market_data.indicators"
    )


@app.command("strategies")
def strategies_command() -> None:
    """List the strategies (built in and registered by research/) with their parameters."""
    import dataclasses

    from prism.strategies import available_strategies

    table = _table("strategy", "parameters (default)", "what it does")
    for name, cls in sorted(available_strategies().items()):
        params = ", ".join(
            f"{f.name}" + ("" if f.default is dataclasses.MISSING else f"={f.default!r}")
            for f in dataclasses.fields(cls)
        )
        table.add_row(name, params, (cls.__doc__ or "").strip().splitlines()[0])
    console.print(table)


def parse_assignments(pairs: list[str]) -> dict[str, object]:
    """Return ``{key: value}`` from ``key=value`` strings, values read as Python literals."""
    import ast

    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected --param key=value, got {pair!r}")
        try:
            parsed[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed[key.strip()] = text
    return parsed


@app.command("backtest")
def backtest_command(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `prism strategies`)")],
    symbols: Annotated[str, typer.Option(help="comma-separated symbols")] = "SPX,NDX",
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    start: Annotated[str | None, typer.Option(help="first bar (UTC date)")] = None,
    end: Annotated[str | None, typer.Option(help="last bar (UTC date)")] = None,
    param: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
    cash: Annotated[float, typer.Option(help="starting capital")] = 1_000_000.0,
    commission_bps: Annotated[float, typer.Option(help="commission, bps of notional")] = 1.0,
    slippage_bps: Annotated[float, typer.Option(help="slippage, bps of price")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Backtest a strategy on stored bars and print its metrics (no MLflow run)."""
    from prism.backtest import BacktestConfig, run_backtest
    from prism.data.store import read_bars
    from prism.db.engine import open_database
    from prism.metrics import summary, trade_statistics
    from prism.strategies import make_strategy

    chosen = make_strategy(strategy, parse_assignments(param or []))
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    bars = read_bars(open_database(load_settings()), names, start, end, timeframe)
    config = BacktestConfig(capital=cash, commission_bps=commission_bps, slippage_bps=slippage_bps)
    result = run_backtest(bars, chosen, config)
    figures = {**summary(result.equity, len(result.trades)), **trade_statistics(result.trades)}
    figures["trades"] = figures.pop("n_trades")
    if as_json:
        print(json.dumps({"strategy": strategy, "symbols": names, **figures}, default=float))
        return
    table = _table("metric", "value")
    for key, value in figures.items():
        shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}"
        table.add_row(key, shown)
    console.print(table)


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option(help="serve the dashboard afterwards")] = True,
    bars: Annotated[int, typer.Option(help="bars to replay through the live runner")] = 60,
    port: Annotated[int, typer.Option(help="dashboard port")] = 8501,
) -> None:
    """Run the whole loop on real data: ingest, backtest, promote, paper-trade, dashboard."""
    from prism.demo import run_demo, serve_dashboard

    settings = load_settings()
    started = time.perf_counter()
    report = run_demo(settings, bars, console)
    table = Table("stage", "result", title=f"Prism demo ({time.perf_counter() - started:.0f}s)")
    table.add_row("bars ingested", f"{report.ingest.received:,} ({report.ingest.inserted:,} new)")
    table.add_row("MLflow run", report.run_id)
    table.add_row(
        "backtest sharpe / max drawdown",
        f"{report.metrics['sharpe']:.2f} / {report.metrics['max_drawdown']:.1%}",
    )
    table.add_row("model promoted", f"{settings.model_name} v{report.model_version} @champion")
    table.add_row("orders / fills", f"{report.replay['orders']} / {report.replay['fills']}")
    table.add_row("final equity", f"{report.replay['final_equity']:,.2f}")
    console.print(table)
    if serve:
        console.print(f"dashboard on http://127.0.0.1:{port} — Ctrl-C to stop")
        serve_dashboard(settings, port)


@app.command("dashboard")
def dashboard(port: Annotated[int, typer.Option(help="port")] = 8501) -> None:
    """Serve the Streamlit dashboard on http://127.0.0.1:PORT."""
    from prism.demo import serve_dashboard

    serve_dashboard(load_settings(), port)


def main() -> None:
    """Run the CLI, turning Prism's errors into one readable line and exit code 1."""
    try:
        app()
    except PrismError as err:
        errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
