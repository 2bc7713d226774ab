"""The ``prism`` command line: configuration, database, data, research, models and the demo.

Every command reports a :class:`~prism.errors.PrismError` as one line naming the problem and the
fix, with exit code 1, instead of a traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from prism.config import describe_settings, load_gates, load_settings, mask_url
from prism.errors import ConfigError, PrismError
from prism.text import output_console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from prism.data.gaps import BackfillResult
    from prism.data.sources import BarSource
    from prism.gates import GateResult

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
report_app = typer.Typer(help="Scheduled reports, run by hand.", no_args_is_help=True)
app.add_typer(report_app, name="report")
features_app = typer.Typer(
    help="The Parquet feature store and its catalog (features.catalog).", no_args_is_help=True
)
app.add_typer(features_app, name="features")
from prism.runner_cli import runner_app  # noqa: E402

app.add_typer(runner_app, name="runner")
from prism.alerts_cli import alerts_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")

console = output_console()
errors = output_console(stderr=True)


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


@db_app.command("info")
def db_info(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Show the database's mode, revision, hypertables, rollups, policies and row counts."""
    from prism.db.engine import open_database
    from prism.db.info import describe

    settings = load_settings()
    info = describe(open_database(settings), settings)
    if as_json:
        print(json.dumps(info.as_dict(), indent=2, default=str))
        return
    console.print(f"mode: {info.mode}, schema revision {info.revision}")
    console.print(f"server: {info.server}")
    console.print(f"hypertables: {', '.join(info.hypertables) or '(none: plain PostgreSQL)'}")
    for rollup in info.rollups:
        console.print(f"rollup: {rollup['name']} ({rollup['kind']} of {rollup['source']})")
    policies = _table("timeframe", "compress after", "keep", "applied by")
    for p in info.policies:
        policies.add_row(p["timeframe"], p["compress_after"] or "-", p["keep"], p["applied_by"])
    console.print(policies)
    if info.jobs:
        jobs = _table("job", "procedure", "target", "every", "scheduled", "config")
        for job in info.jobs:
            jobs.add_row(
                str(job["job_id"]),
                job["proc_name"],
                job["target"] or "-",
                job["schedule"],
                "yes" if job["scheduled"] else "paused",
                job["config"] or "",
            )
        console.print(jobs)
    counts = _table("table", "rows")
    for table, rows in info.row_counts.items():
        counts.add_row(table, f"{rows:,}")
    console.print(counts)


@db_app.command("refresh")
def db_refresh() -> None:
    """Refresh the 1h and 1d rollups of the 1m bars now."""
    from prism.db.engine import open_database
    from prism.db.rollups import refresh_rollups

    refresh_rollups(open_database(load_settings()))
    console.print("rollups market_data.ohlcv_1h and market_data.ohlcv_1d refreshed")


@db_app.command("retention")
def db_retention() -> None:
    """Apply PRISM_COMPRESS_* and PRISM_RETENTION_*: TimescaleDB jobs, or (plain PostgreSQL)
    delete the bars older than their timeframe's retention now and refresh the rollups."""
    from prism.db.engine import open_database
    from prism.db.rollups import apply_policies, apply_retention, refresh_rollups

    settings = load_settings()
    engine = open_database(settings)
    installed = apply_policies(engine, settings)
    for line in installed:
        console.print(line)
    if not installed:
        deleted = apply_retention(engine, settings)
        refresh_rollups(engine)
        summary = ", ".join(f"{tf}: {n:,}" for tf, n in deleted.items()) or "nothing to do"
        console.print(f"bars deleted by retention: {summary}")


def _ingest(source: BarSource) -> None:
    """Validate, quarantine and upsert ``source``'s bars, then print what happened."""
    from prism.data.gaps import ingest_and_heal
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    started = time.perf_counter()
    report, healed = ingest_and_heal(engine, source)
    console.print(
        f"{report.source}: {report.received:,} bars received, {report.inserted:,} "
        f"inserted, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.quarantined:,} quarantined, {report.flagged:,} flagged for review in "
        f"{time.perf_counter() - started:.1f}s"
    )
    if healed:
        _print_backfill(healed)


def _print_backfill(results: list[BackfillResult]) -> None:
    """Print one row per backfilled gap: how many bars came back, and why not all."""
    table = _table("symbol", "timeframe", "start", "end", "missing", "filled", "source", "note")
    for r in results:
        g = r.gap
        table.add_row(
            g.symbol,
            g.timeframe,
            str(g.start),
            str(g.end),
            str(g.missing),
            str(r.filled),
            r.source,
            r.reason,
        )
    console.print(table)
    console.print(
        f"backfill: {sum(r.filled for r in results):,} bars restored in {len(results)} gap(s); "
        f"{sum(r.unfilled for r in results):,} could not be filled"
    )


def _gate(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: str | None,
    end: str | None,
    allow_gaps: bool,
) -> None:
    """Refuse to run on bars with open gaps or a stale feed, unless ``allow_gaps``."""
    from prism.data.health import check_quality

    if allow_gaps:
        errors.print(f"--allow-gaps: data-quality gate skipped for {', '.join(symbols)}")
        return
    check_quality(engine, symbols, timeframe, start, end, now=_gate_moment(end))


def _gate_moment(end: str | None) -> datetime:
    """The moment a stale feed is judged at: the end of the run, or now."""
    now = datetime.now(UTC)
    if end is None:
        return now
    stamp = datetime.fromisoformat(end)
    return min(now, stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))


AllowGaps = Annotated[
    bool,
    typer.Option("--allow-gaps", help="run even on bars with open gaps or a stale feed"),
]


def _symbols(text: str) -> list[str]:
    """Split a comma-separated symbol list, dropping blanks."""
    return [s.strip() for s in text.split(",") if s.strip()]


@ingest_app.command("bundled")
def ingest_bundled() -> None:
    """Load the daily S&P 500 (SPX) and NASDAQ (NDX) bars that ship with `arch`, 1999-2018."""
    from prism.data.sources import ArchBarSource

    _ingest(ArchBarSource())


@ingest_app.command("skfolio")
def ingest_skfolio(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all 20)")] = None,
) -> None:
    """Load the daily closes of 20 S&P 500 stocks that ship with `skfolio`, 1990-2022
    (flat bars: open = high = low = close, volume 0)."""
    from prism.data.sources import SkfolioBarSource

    _ingest(SkfolioBarSource(_symbols(symbols) if symbols else None))


FileSymbol = Annotated[
    str | None, typer.Option(help="the symbol of every row (else the file needs a symbol column)")
]
FileTimeframe = Annotated[str, typer.Option(help="bar timeframe: 1m, 5m, 1h or 1d")]
FileMap = Annotated[
    list[str] | None,
    typer.Option("--map", help="FILE_COLUMN=BAR_COLUMN, repeatable: --map 'Adj Close=close'"),
]
FileTimezone = Annotated[
    str, typer.Option("--tz", help="time zone of naive timestamps (IANA name)")
]
FileCalendar = Annotated[
    str | None,
    typer.Option(
        help="trading calendar for gap detection: an exchange_calendars name (XNYS, XLON, …) "
        "or 24/7; default: keep a known symbol's, XNYS for a new one"
    ),
]
FileDateFormat = Annotated[
    str | None, typer.Option(help="strftime format of the time column, e.g. %d/%m/%Y")
]


def _ingest_file(
    path: Path,
    file_format: Literal["csv", "parquet"],
    symbol: str | None,
    timeframe: str,
    mapping: list[str] | None,
    tz: str,
    date_format: str | None,
    calendar: str | None,
) -> None:
    """Ingest one file through :class:`~prism.data.files.FileBarSource`."""
    from prism.data.files import FileBarSource, parse_mapping

    _ingest(
        FileBarSource(
            path,
            symbol,
            timeframe,
            parse_mapping(mapping or []),
            tz,
            date_format,
            file_format,
            calendar,
        )
    )


@ingest_app.command("csv")
def ingest_csv(
    path: Annotated[Path, typer.Argument(help="the CSV file")],
    symbol: FileSymbol = None,
    timeframe: FileTimeframe = "1d",
    mapping: FileMap = None,
    tz: FileTimezone = "UTC",
    date_format: FileDateFormat = None,
    calendar: FileCalendar = None,
) -> None:
    """Load bars from a CSV file (columns time, open, high, low, close, volume after --map)."""
    _ingest_file(path, "csv", symbol, timeframe, mapping, tz, date_format, calendar)


@ingest_app.command("parquet")
def ingest_parquet(
    path: Annotated[Path, typer.Argument(help="the Parquet file")],
    symbol: FileSymbol = None,
    timeframe: FileTimeframe = "1d",
    mapping: FileMap = None,
    tz: FileTimezone = "UTC",
    date_format: FileDateFormat = None,
    calendar: FileCalendar = None,
) -> None:
    """Load bars from a Parquet file (columns time, open, high, low, close, volume after --map)."""
    _ingest_file(path, "parquet", symbol, timeframe, mapping, tz, date_format, calendar)


@ingest_app.command("yahoo")
def ingest_yahoo(
    symbols: Annotated[str, typer.Argument(help="comma-separated Yahoo symbols: AAPL,^GSPC")],
    interval: Annotated[str, typer.Option(help="1m, 5m, 1h or 1d")] = "1d",
    start: Annotated[str | None, typer.Option(help="first day (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="day after the last (exclusive)")] = None,
    adjust: Annotated[bool, typer.Option(help="split- and dividend-adjusted prices")] = True,
) -> None:
    """Load bars from Yahoo Finance through yfinance (needs the network)."""
    from prism.data.yahoo import YahooBarSource

    _ingest(YahooBarSource(_symbols(symbols), interval, start, end, adjust))


@ingest_app.command("ccxt")
def ingest_ccxt(
    exchange: Annotated[str, typer.Argument(help="a ccxt exchange id: binance, kraken, …")],
    symbols: Annotated[str, typer.Argument(help="comma-separated unified symbols: BTC/USDT")],
    timeframe: Annotated[str, typer.Option(help="1m, 5m, 1h or 1d")] = "1h",
    since: Annotated[str, typer.Option(help="first candle (UTC date or time)")] = "2024-01-01",
    until: Annotated[str | None, typer.Option(help="last candle (default: now)")] = None,
    limit: Annotated[int, typer.Option(help="candles asked for per request")] = 1000,
) -> None:
    """Load candles from a crypto exchange through ccxt, paged within its rate limit."""
    from prism.data.crypto import CcxtBarSource

    _ingest(CcxtBarSource(exchange, _symbols(symbols), timeframe, since, until, limit))


def parse_parameters(args: list[str]) -> dict[str, str]:
    """Return ``{NAME: VALUE}`` from ``-p NAME VALUE`` pairs (papermill's own syntax)."""
    parameters: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise ConfigError(
                f"expected `-p NAME VALUE`, got {' '.join([flag, *rest[:2]])!r}; "
                "example: prism research run notebooks/02_backtest_strategy.ipynb "
                "-p fast 10 -p slow 50"
            )
        name, value = rest.pop(0), rest.pop(0)
        parameters[name] = value
    return parameters


@report_app.command("daily")
def report_daily(
    day: Annotated[
        str | None, typer.Option("--date", help="the UTC day (YYYY-MM-DD; default today)")
    ] = None,
    deployment: Annotated[
        str | None, typer.Option(help="one deployment (default: every deployment)")
    ] = None,
) -> None:
    """Execute the daily report notebook (positions, P&L, risk, drift, fills) for a day and
    print where its HTML is; the runner's daily_report flow does the same every day."""
    from prism.reports import run_daily_report

    print(run_daily_report(load_settings(), day, deployment, progress=sys.stderr.isatty()))


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


@research_app.command(
    "sweep", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def research_sweep(
    ctx: typer.Context,
    notebook: Annotated[Path, typer.Argument(help="the notebook to execute")],
    grid: Annotated[
        list[str], typer.Option(help="axis: name=v1,v2,... or name=start..stop[:step]")
    ],
    workers: Annotated[
        int | None, typer.Option(help="notebooks run at once (default: one per core)")
    ] = None,
    keep: Annotated[int, typer.Option(help="best combinations kept as child runs")] = 3,
    metric: Annotated[str, typer.Option(help="metric that ranks the combinations")] = "oos_sharpe",
) -> None:
    """Execute a notebook over a parameter grid in parallel: one parent MLflow run with the
    whole grid as a table, child runs for the best `--keep`. Fixed parameters follow as
    `-p NAME VALUE`; a failing combination is reported with its cell and the sweep goes on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from prism.research_sweep import Trial, parse_grid, sweep_notebook

    axes = parse_grid(grid)
    total = 1
    for values in axes.values():
        total *= len(values)
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=errors) as progress:
        task = progress.add_task(f"{notebook.name}: {total:,} combinations", total=total)

        def advance(trial: Trial) -> None:
            if trial.failed:
                progress.console.print(f"[red]failed[/] {trial.grid}: {trial.error}")
            progress.advance(task)

        result = sweep_notebook(
            load_settings(),
            notebook,
            axes,
            parse_parameters(list(ctx.args)),
            workers=workers,
            keep=keep,
            metric=metric,
            on_trial=advance,
        )
    table = result.table
    shown = _table("trial", *axes, result.metric, "status")
    ranked = table.sort_values(result.metric, ascending=False) if result.metric in table else table
    for row in ranked.head(10).to_dict("records"):
        shown.add_row(
            str(row["trial"]),
            *(str(row[name]) for name in axes),
            f"{row.get(result.metric, float('nan')):.4g}",
            row["status"],
        )
    console.print(shown)
    for problem in result.child_failures:
        errors.print(f"[red]kept child failed[/]: {problem}")
    failed = len(result.failures())
    errors.print(
        f"{len(table):,} trials ({failed} failed); parent run {result.parent_run_id}; "
        f"children: {', '.join(c.run_id for c in result.children) or 'none'}"
    )
    print(result.parent_run_id)


def _gate_table(gates: list[GateResult]) -> Table:
    table = _table("gate", "reads", "actual", "required", "result", "note")
    for gate in gates:
        table.add_row(
            gate.gate,
            gate.metric,
            gate.actual,
            gate.required,
            "[green]pass[/]" if gate.passed else "[red]FAIL[/]",
            gate.note,
        )
    return table


@models_app.command("promote")
def models_promote(
    run: Annotated[str, typer.Option("--run", help="the MLflow run id to promote")],
    alias: Annotated[
        Literal["challenger", "champion"], typer.Option(help="alias to point at the version")
    ] = "champion",
    reason: Annotated[str, typer.Option(help="why (kept with the approval)")] = "",
    approved_by: Annotated[str | None, typer.Option(help="who approves (default: you)")] = None,
) -> None:
    """Register a run's model and point the alias at it if it passes the promotion gates
    (research/gates.toml); on a failure print the gates and change nothing."""
    from prism.registry import promote

    settings = load_settings()
    result = promote(
        settings,
        run,
        approved_by=approved_by or getpass.getuser(),
        alias=alias,
        reason=reason,
    )
    console.print(_gate_table(result.gates))
    record = result.gates_record
    console.print(f"gates file {record.get('file')} version {record.get('version')}")
    if not result.promoted:
        errors.print(
            f"[red]not promoted[/]: {len(result.failed())} gate(s) failed; the registry is "
            "unchanged"
        )
        raise typer.Exit(1)
    console.print(f"promoted {result.model_name} version {result.version} to alias '{alias}'")


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


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="the model version")]) -> None:
    """Show one version: its run, aliases, approval, gate results and history."""
    from prism.db.engine import open_database
    from prism.gates import GateResult as Gate
    from prism.registry import history, version_info

    settings = load_settings()
    info = version_info(settings, version)
    table = _table("field", "value")
    for name, value in [
        ("model", info.name),
        ("version", info.version),
        ("aliases", ", ".join(info.aliases) or "(none)"),
        ("run id", info.run_id),
        ("registered (UTC)", info.created_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("approved by", info.approved_by or ""),
        ("approved at", info.approved_at or ""),
        ("reason", info.reason or ""),
        ("gates file", f"{info.tags.get('gates_file', '')} v{info.tags.get('gates_version', '')}"),
        ("gates sha256", info.tags.get("gates_sha256", "")),
        ("gates overrides", info.tags.get("gates_overrides", "")),
    ]:
        table.add_row(name, value)
    console.print(table)
    gates = json.loads(info.tags.get("gate_results", "[]"))
    if gates:
        console.print(_gate_table([Gate(**g) for g in gates]))
    events = _table("when (UTC)", "action", "alias", "by", "from", "reason")
    for event in history(open_database(settings), settings.model_name, version):
        events.add_row(
            event.decided_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.action,
            event.alias,
            event.decided_by,
            event.previous_version or "",
            event.reason,
        )
    console.print(events)


@models_app.command("rollback")
def models_rollback(
    reason: Annotated[str, typer.Option(help="why (kept in the history)")] = "",
    to: Annotated[str | None, typer.Option(help="version to return to (default: previous)")] = None,
    by: Annotated[str | None, typer.Option(help="who rolls back (default: you)")] = None,
) -> None:
    """Move 'champion' back to the version it pointed at before, and record it."""
    from prism.registry import rollback

    done = rollback(load_settings(), by or getpass.getuser(), reason, to)
    console.print(
        f"{done.model_name}: '{done.alias}' moved from version {done.from_version} "
        f"back to version {done.to_version}"
    )


@app.command("lineage")
def lineage_command(
    order_id: Annotated[str, typer.Argument(help="the order's client order id")],
) -> None:
    """Trace an order back: decision, model version and alias, MLflow run, notebook."""
    from prism.db.engine import open_database
    from prism.lineage import order_lineage

    settings = load_settings()
    chain = order_lineage(open_database(settings), settings, order_id)
    table = _table("step", "field", "value")
    last = ""
    for step, name, value in chain.rows():
        table.add_row(step if step != last else "", name, value)
        last = step
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
    names = _symbols(symbols) if symbols else stored_symbols(engine, timeframe)
    values = indicators.compute(read_bars(engine, names, timeframe=timeframe))
    written = store_indicators(engine, values, timeframe)
    console.print(
        f"{written:,} indicator values for {', '.join(names)} ({timeframe}) stored "
        "in market_data.indicators"
    )


GapSymbol = Annotated[str | None, typer.Option(help="comma-separated (default: all)")]
GapTimeframe = Annotated[str | None, typer.Option(help="1m, 5m, 1h or 1d (default: all)")]


@data_app.command("gaps")
def data_gaps(
    symbol: GapSymbol = None,
    timeframe: GapTimeframe = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """List missing bars against each symbol's trading calendar, as ranges."""
    from prism.data.gaps import find_gaps
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    found = find_gaps(engine, _symbols(symbol) if symbol else None, timeframe)
    if as_json:
        print(json.dumps([gap.as_dict() for gap in found], indent=2))
        return
    table = _table("symbol", "timeframe", "start", "end", "missing")
    for gap in found:
        table.add_row(gap.symbol, gap.timeframe, str(gap.start), str(gap.end), str(gap.missing))
    console.print(table)
    console.print(f"{len(found)} gap(s), {sum(g.missing for g in found):,} missing bars")


@data_app.command("backfill")
def data_backfill(symbol: GapSymbol = None, timeframe: GapTimeframe = None) -> None:
    """Fetch exactly the missing ranges from each symbol's source; report what stays missing."""
    from prism.data.gaps import backfill, find_gaps
    from prism.db.engine import open_database

    engine = open_database(load_settings())
    found = find_gaps(engine, _symbols(symbol) if symbol else None, timeframe)
    if not found:
        console.print("no gaps: nothing to backfill")
        return
    _print_backfill(backfill(engine, found))


@data_app.command("status")
def data_status_command(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Per symbol and timeframe: span, bars, open gaps, quarantined rows and staleness
    (stale live feeds are also written to audit.system_events)."""
    from prism.data.health import data_status
    from prism.db.engine import open_database

    statuses = data_status(open_database(load_settings()))
    if as_json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return
    columns = ("symbol", "timeframe", "source", "first", "last", "bars", "gaps", "missing")
    table = _table(*columns, "quarantined", "staleness")
    for s in statuses:
        shown = {**s.as_dict(), "bars": f"{s.bars:,}", "missing": f"{s.missing:,}"}
        table.add_row(*(str(shown[c]) for c in (*columns, "quarantined", "staleness")))
    console.print(table)


PROGRESS_FROM = 24
"""Show a progress bar when a build writes at least this many partitions."""


@features_app.command("build")
def features_build(
    symbols: Annotated[str | None, typer.Option(help="comma-separated (default: all)")] = None,
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    benchmark: Annotated[str, typer.Option(help="the symbol beta is measured against")] = "SPX",
) -> None:
    """Compute the features into Parquet, rewriting only the months whose bars changed."""
    from rich.progress import Progress

    from prism.db.engine import open_database
    from prism.feature_store import build

    engine = open_database(load_settings())
    names = _symbols(symbols) if symbols else None
    started = time.perf_counter()
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("writing partitions", total=None, visible=False)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM)

        report = build(engine, names, timeframe, benchmark, progress=advance)
    table = _table("symbol", "months written", "months unchanged", "removed", "written range")
    for line in report.by_symbol():
        span = f"{line.first_written} … {line.last_written}" if line.written else ""
        table.add_row(line.symbol, str(line.written), str(line.unchanged), str(line.removed), span)
    console.print(table)
    console.print(
        f"{len(report.written)} months written ({report.rows_written:,} rows), "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed under "
        f"{report.root / f'timeframe={timeframe}'} in {time.perf_counter() - started:.1f}s"
    )


@features_app.command("catalog")
def features_catalog() -> None:
    """Print features.catalog: each feature's meaning, category, formula, inputs and lookback."""
    from prism.db.engine import open_database
    from prism.feature_store import read_catalog

    catalog = read_catalog(open_database(load_settings()))
    table = _table(
        "feature", "category", "dtype", "lookback", "description", "computation", "inputs"
    )
    for row in catalog.to_dict("records"):
        table.add_row(
            *(str(row[c]) for c in ("name", "category", "dtype", "lookback", "description")),
            str(row["computation"]),
            ", ".join(row["dependencies"]),
        )
    console.print(table)


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
        table.add_row(name, params, " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()))
    console.print(table)


def parse_assignments(pairs: list[str]) -> dict[str, object]:
    """Return ``{key: value}`` from ``key=value`` strings, values read as Python literals."""
    from prism.text import read_literal

    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected --param key=value, got {pair!r}")
        parsed[key.strip()] = read_literal(text)
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
    allow_gaps: AllowGaps = False,
) -> None:
    """Backtest a strategy on stored bars and print its metrics (no MLflow run); bars with
    open gaps or a stale feed are refused unless --allow-gaps."""
    from prism.backtest import BacktestConfig, report, run_backtest
    from prism.data.store import read_bars
    from prism.db.engine import open_database
    from prism.strategies import make_strategy

    chosen = make_strategy(strategy, parse_assignments(param or []))
    names = _symbols(symbols)
    engine = open_database(load_settings())
    bars = read_bars(engine, names, start, end, timeframe)
    _gate(engine, names, timeframe, start, end, allow_gaps)
    config = BacktestConfig(capital=cash, commission_bps=commission_bps, slippage_bps=slippage_bps)
    figures = report(run_backtest(bars, chosen, config), timeframe)
    figures["trades"] = figures.pop("n_trades")
    if as_json:
        print(
            json.dumps(
                {"strategy": strategy, "symbols": names, "allow_gaps": allow_gaps, **figures},
                default=float,
            )
        )
        return
    table = _table("metric", "value")
    for key, value in figures.items():
        shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}"
        table.add_row(key, shown)
    console.print(table)


@app.command("sweep")
def sweep_command(
    strategy: Annotated[str, typer.Argument(help="strategy name (see `prism strategies`)")],
    grid: Annotated[
        list[str], typer.Option(help="axis: name=v1,v2,... or name=start..stop[:step]")
    ],
    where: Annotated[list[str] | None, typer.Option(help="filter, e.g. fast<slow")] = None,
    symbols: Annotated[str, typer.Option(help="comma-separated symbols")] = "SPX,NDX",
    timeframe: Annotated[str, typer.Option(help="bar timeframe")] = "1d",
    start: Annotated[str | None, typer.Option(help="first bar (UTC date)")] = None,
    end: Annotated[str | None, typer.Option(help="last bar (UTC date)")] = None,
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

    from prism.backtest import BacktestConfig
    from prism.data.store import read_bars
    from prism.db.engine import open_database
    from prism.sweep import best, expand_grid, parse_axis, parse_condition, run_sweep

    axes = dict(parse_axis(axis) for axis in grid)
    filters = [parse_condition(text) for text in where or []]
    combos = expand_grid(axes, lambda combo: all(keep(combo) for keep in filters))
    names = _symbols(symbols)
    engine = open_database(load_settings())
    bars = read_bars(engine, names, start, end, timeframe)
    _gate(engine, names, timeframe, start, end, allow_gaps)
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
    shown = _table(*axes, "sharpe", "total_return", "max_drawdown", "n_trades")
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
    table.add_row("database", report.database)
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
