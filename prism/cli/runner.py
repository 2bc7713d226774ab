"""``prism runner``: the live runner's commands (serve, kill switch, resume, replay, deployments).

Kept apart from :mod:`prism.cli.app` so the runner's commands live beside each other; the heavy
imports (Prefect, MLflow) happen inside the commands, so ``prism --help`` stays fast.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from prism.core.errors import ConfigError
from prism.core.settings import load_settings
from prism.core.text import output_console

runner_app = typer.Typer(
    help="The live runner: deployments, kill switch, replay and `serve` on Prefect.",
    no_args_is_help=True,
)
deployments_app = typer.Typer(
    help="Deployments (config.strategies): what the runner trades.", no_args_is_help=True
)
runner_app.add_typer(deployments_app, name="deployments")
limits_app = typer.Typer(
    help="Risk limits (config.risk_limits): every cycle reads them, so a change applies at the "
    "next one.",
    no_args_is_help=True,
)
runner_app.add_typer(limits_app, name="limits")
console = output_console()


def _engine():  # type: ignore[no-untyped-def]
    from prism.db.engine import open_database

    return open_database(load_settings())


def _symbols(value: str) -> tuple[str, ...]:
    symbols = tuple(s.strip() for s in value.split(",") if s.strip())
    if not symbols:
        raise ConfigError(f"--symbols {value!r} names no symbol; use e.g. --symbols SPX,NDX")
    return symbols


@deployments_app.command("add")
def deployments_add(
    name: Annotated[str, typer.Argument(help="deployment name (also its paper account)")],
    symbols: Annotated[str | None, typer.Option(help="comma separated, e.g. SPX,NDX")] = None,
    timeframe: Annotated[str | None, typer.Option(help="1m, 5m, 1h or 1d")] = None,
    capital: Annotated[float | None, typer.Option(help="starting equity")] = None,
    alias: Annotated[str | None, typer.Option(help="model alias it trades")] = None,
    model: Annotated[str | None, typer.Option(help="registered model (default: settings)")] = None,
    enabled: Annotated[bool | None, typer.Option(help="run it on schedule")] = None,
    broker: Annotated[
        str | None,
        typer.Option(help="paper (default), alpaca or ccxt:<exchange>, e.g. ccxt:binance"),
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="the account at the broker (paper: default the name)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE sizing/cost override, repeatable")
    ] = None,
) -> None:
    """Add a deployment, or change the given fields of an existing one (takes effect at the
    next cycle, no redeploy)."""
    import json
    from dataclasses import replace

    from prism.live import deployments

    engine = _engine()
    try:
        current: deployments.Deployment | None = deployments.get_deployment(engine, name)
    except ConfigError:
        current = None
    if current is None and (symbols is None or capital is None):
        raise ConfigError(
            f"a new deployment needs --symbols and --capital: `prism runner deployments add "
            f"{name} --symbols SPX,NDX --timeframe 1d --capital 1e6`"
        )
    base = current or deployments.Deployment(name, (), "1d", 1.0)
    params = dict(base.params)
    for pair in param or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--param {pair!r} must be NAME=VALUE, e.g. --param band=0.02")
        params[key.strip()] = json.loads(value) if value.strip() else None
    changes: dict[str, Any] = {
        "symbols": _symbols(symbols) if symbols is not None else None,
        "timeframe": timeframe,
        "capital": capital,
        "model_alias": alias,
        "model_name": model,
        "enabled": enabled,
        "broker": broker,
        "broker_account": account,
    }
    updated = replace(base, params=params, **{k: v for k, v in changes.items() if v is not None})
    saved = deployments.upsert_deployment(engine, updated)
    console.print(
        f"[green]✓[/] deployment {saved.name}: {','.join(saved.symbols)} {saved.timeframe}, "
        f"capital {saved.capital:,.0f}, alias {saved.model_alias!r}, broker {saved.broker}"
    )


@deployments_app.command("list")
def deployments_list() -> None:
    """List the deployments with their state (halted shows why and by whom)."""
    from prism.live import deployments

    table = Table(
        "deployment", "symbols", "timeframe", "capital", "alias", "broker", "version", "state"
    )
    for d in deployments.list_deployments(_engine()):
        state = "disabled" if not d.enabled else "running"
        if d.halted:
            state = f"[red]halted[/] by {d.halted_by}: {d.halt_reason}"
        table.add_row(
            d.name,
            ",".join(d.symbols),
            d.timeframe,
            f"{d.capital:,.0f}",
            d.model_alias,
            d.broker + (f" ({d.broker_account})" if d.broker_account else ""),
            d.last_model_version or "-",
            state,
        )
    console.print(table)


@runner_app.command("halt")
def halt_command(
    name: Annotated[str, typer.Argument(help="deployment")],
    flatten: Annotated[bool, typer.Option(help="also close every position")] = False,
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "kill switch",
) -> None:
    """Kill switch: stop the deployment trading now (and close its positions with --flatten)."""
    from prism.live import cycle

    settings = load_settings()
    engine = _engine()
    by = getpass.getuser()
    if flatten:
        orders = cycle.flatten(engine, settings, name, by)
        console.print(
            f"[red]halted[/] {name}; {len(orders)} closing orders sent, filled at the next price"
        )
        return
    cycle.halt_deployment(engine, settings, name, reason, by, "kill_switch")
    console.print(f"[red]halted[/] {name}: it books fills but sends no order until resumed")


@runner_app.command("resume")
def resume_command(name: Annotated[str, typer.Argument(help="deployment")]) -> None:
    """Clear a halt (kill switch, circuit breaker, reconciliation, outage) after a person
    has looked at why."""
    from prism.live import deployments

    if not deployments.resume_deployment(_engine(), name, getpass.getuser()):
        console.print(f"{name} was not halted")
        return
    console.print(f"[green]✓[/] {name} resumed; it trades from its next cycle")


@runner_app.command("replay")
def replay_command(
    deployment: Annotated[str, typer.Option(help="deployment to replay")],
    start: Annotated[datetime, typer.Option(help="first bar (UTC)")],
    end: Annotated[datetime, typer.Option(help="last bar (UTC)")],
) -> None:
    """Run the deployment's trade cycle over every stored bar from --start to --end, as if live."""
    from prism.live.replay import replay_window

    summary = replay_window(load_settings(), deployment, start, end, _engine(), progress=True)
    console.print(
        f"[green]✓[/] replayed {summary.bars} bars of {deployment}: {summary.orders} "
        f"orders, {summary.fills} fills, final equity {summary.final_equity or 0:,.2f}"
    )


@runner_app.command("drift")
def drift_command(
    deployment: Annotated[str, typer.Option(help="deployment to measure")],
    start: Annotated[datetime | None, typer.Option(help="first bar (UTC)")] = None,
    end: Annotated[datetime | None, typer.Option(help="last bar (UTC)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Re-simulate the deployment's live window with the backtester and split the gap between
    live and simulated P&L into signals, risk limits, fill prices, fees, timing and a residual."""
    import json

    from prism.live.drift import drift

    report = drift(_engine(), load_settings(), deployment, start, end)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(title=f"{deployment}: live against backtest, {report.start} to {report.end}")
    table.add_column("line")
    table.add_column("amount", justify="right")
    table.add_column("share of gap", justify="right")
    for line, row in report.contributions_frame().iterrows():
        share = "" if row["share_of_gap"] != row["share_of_gap"] else f"{row['share_of_gap']:.1%}"
        table.add_row(str(line), f"{row['amount']:,.2f}", share)
    console.print(table)
    console.print(
        f"{report.bars} bars, model {report.model}: {len(report.signal_differences)} signal "
        f"differences, {len(report.risk_limited)} orders cut by risk limits, "
        f"{len(report.missed_cycles)} missed cycles, {len(report.late_fills())} late fills of "
        f"{len(report.fills)}"
    )
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")


@runner_app.command("reconcile")
def reconcile_command(name: Annotated[str, typer.Argument(help="deployment")]) -> None:
    """Compare the deployment's positions with its broker's; a gap over 1% halts it."""
    from prism.live.reconcile import reconcile

    result = reconcile(_engine(), load_settings(), name)
    table = Table("", "ledger", f"broker ({result.broker})")
    for row in result.sides():
        table.add_row(*row)
    console.print(table)
    console.print(result.describe())
    if result.mismatches:
        raise typer.Exit(1)


@runner_app.command("serve")
def serve_command() -> None:
    """Serve ingest, trade (every enabled deployment), reconcile, daily_report and maintenance
    flows on their schedules with Prefect (a local Prefect server is started when
    PREFECT_API_URL is unset, and stopped on exit). Ctrl-C or SIGTERM stops it cleanly: no new
    flow runs, running ones get PRISM_RUNNER_STOP_SECONDS to finish; Ctrl-C twice forces it."""
    import os
    import sys

    from prism.core.settings import project_root, service_environment
    from prism.live.serving import serve_runner

    settings = load_settings()
    env = {**os.environ, **service_environment(settings), "PRISM_HOME": str(settings.home)}
    code = serve_runner(settings, [sys.executable, "-m", "runner.serve"], project_root(), env)
    raise typer.Exit(code)


Deployment = Annotated[
    str | None,
    typer.Option("--deployment", help="one deployment's own limits (default: the global ones)"),
]


@limits_app.command("list")
def limits_list(deployment: Deployment = None) -> None:
    """List the risk limits with what they mean and who changed them last; with --deployment,
    the values that deployment trades under and where each comes from."""
    from sqlalchemy import text

    from prism.live import deployments, risk

    engine = _engine()
    if deployment is not None:
        deployments.get_deployment(engine, deployment)
    with engine.begin() as conn:
        risk.seed_default_limits(conn)
        rows = conn.execute(
            text(
                "SELECT g.key, coalesce(d.value, g.value), g.description, "
                "coalesce(d.updated_by, g.updated_by), coalesce(d.updated_at, g.updated_at), "
                "d.value IS NOT NULL FROM config.risk_limits g "
                "LEFT JOIN config.deployment_risk_limits d ON d.key = g.key AND d.deployment = :d "
                "ORDER BY g.key"
            ),
            {"d": deployment},
        ).all()
    table = Table("limit", "value", "applies to", "meaning", "changed by", "changed at")
    for key, value, description, by, at, own in rows:
        scope = deployment if own else "all deployments"
        table.add_row(key, f"{float(value):g}", scope, description, by, f"{at:%Y-%m-%d %H:%M}")
    console.print(table)


@limits_app.command("set")
def limits_set(
    key: Annotated[str, typer.Argument(help="limit, e.g. max_position_pct")],
    value: Annotated[float, typer.Argument(help="new value (fraction of equity, or currency)")],
    deployment: Deployment = None,
) -> None:
    """Change one risk limit, globally or for one deployment, recorded as a system event; the
    next cycle trades under it."""
    from prism.live import deployments

    previous = deployments.change_limit(_engine(), key, value, getpass.getuser(), deployment)
    scope = f" for {deployment}" if deployment else ""
    console.print(
        f"[green]✓[/] {key}{scope} = {value:g} (was {previous:g}); applies from the next cycle"
    )
