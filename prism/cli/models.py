"""``prism models`` and ``prism lineage``: promotion through the gates, versions, rollback, and
an order traced back to its notebook run.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from prism.cli.common import console, errors, folding_table
from prism.core.settings import load_settings

if TYPE_CHECKING:
    from prism.registry.gates import GateResult


models_app = typer.Typer(help="The MLflow model registry.", no_args_is_help=True)


def _gate_table(gates: list[GateResult]) -> Table:
    table = folding_table("gate", "reads", "actual", "required", "result", "note")
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
    allow_dirty: Annotated[
        bool, typer.Option(help="waive the clean-tree gate (needs --override-reason)")
    ] = False,
    allow_gaps: Annotated[
        bool, typer.Option(help="waive the data-gaps gate (needs --override-reason)")
    ] = False,
    override_reason: Annotated[
        str, typer.Option(help="why a gate is waived (kept with the approval)")
    ] = "",
) -> None:
    """Recompute a run's evidence (look-ahead and parity checks on its model and the stored
    bars, its metrics from its logged equity and trades), and register its model and point the
    alias at it if it passes the promotion gates (research/gates.toml); on a failure print the
    gates and change nothing. The approver is you (the OS user)."""
    from prism.registry.evidence import lookahead_table
    from prism.registry.gates import Overrides
    from prism.registry.promotion import approver, promote

    settings = load_settings()
    result = promote(
        settings,
        run,
        approved_by=approver(),
        alias=alias,
        reason=reason,
        overrides=Overrides(allow_dirty, allow_gaps, override_reason),
    )
    console.print(_gate_table(result.gates))
    violations = result.recomputed.lookahead
    if violations:
        table = folding_table(
            "cut (UTC)", "bar time (UTC)", "symbol", "full history", "cut history"
        )
        for row in lookahead_table(violations).itertuples(index=False):
            table.add_row(*(str(value) for value in row))
        console.print(f"look-ahead: {len(violations)} weight(s) changed when history was cut")
        console.print(table)
    record = result.gates_record
    console.print(f"gates file {record.get('file')} version {record.get('version')}")
    console.print(f"code sha256 {result.code_sha256 or '(none)'}")
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
    from prism.registry.versions import list_versions

    table = folding_table(
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
    from prism.registry.gates import GateResult as Gate
    from prism.registry.promotion import history
    from prism.registry.versions import version_info

    settings = load_settings()
    info = version_info(settings, version)
    table = folding_table("field", "value")
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
        ("code sha256", info.tags.get("code_sha256", "")),
        ("waived gates", info.tags.get("waived_gates", "")),
        ("waiver reason", info.tags.get("waiver_reason", "")),
    ]:
        table.add_row(name, value)
    console.print(table)
    gates = json.loads(info.tags.get("gate_results", "[]"))
    if gates:
        console.print(_gate_table([Gate(**g) for g in gates]))
    events = folding_table("when (UTC)", "action", "alias", "by", "from", "reason")
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
) -> None:
    """Move 'champion' back to the version it pointed at before, and record it (as you, the
    OS user)."""
    from prism.registry.promotion import approver, rollback

    done = rollback(load_settings(), approver(), reason, to)
    console.print(
        f"{done.model_name}: '{done.alias}' moved from version {done.from_version} "
        f"back to version {done.to_version}"
    )


def lineage_command(
    order_id: Annotated[str, typer.Argument(help="the order's client order id")],
) -> None:
    """Trace an order back: decision, model version and alias, MLflow run, notebook."""
    from prism.db.engine import open_database
    from prism.registry.lineage import order_lineage

    settings = load_settings()
    chain = order_lineage(open_database(settings), settings, order_id)
    table = folding_table("step", "field", "value")
    last = ""
    for step, name, value in chain.rows():
        table.add_row(step if step != last else "", name, value)
        last = step
    console.print(table)
