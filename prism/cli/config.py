"""``prism config``: the effective settings and where each value came from.

Heavy libraries (MLflow, Prefect, papermill, pandas) are imported inside the commands, so
``prism --help`` and commands that do not need them start fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from prism.cli.common import console, folding_table
from prism.core.settings import describe_settings, load_settings

if TYPE_CHECKING:
    pass


def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the effective configuration and where each value came from."""
    from prism.registry.gates import gates_file_source, load_gates

    settings = load_settings()
    reports = describe_settings(
        settings, load_gates(settings), lambda name: gates_file_source(settings.gates_file, name)
    )
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
    table = folding_table("setting", "value", "source")
    for r in reports:
        table.add_row(r.name, str(r.value), r.source)
    console.print(table)
