"""The ``prism`` command imports only what a command needs: ``--help``, ``config`` and
``strategies`` load no heavy library, and the help lines ``--help`` shows without importing the
commands are the commands' own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from prism.cli.app import COMMANDS, load_command

HEAVY = (
    "mlflow",
    "pandas",
    "numpy",
    "numba",
    "plotly",
    "matplotlib",
    "sklearn",
    "scipy",
    "sqlalchemy",
    "papermill",
    "prefect",
    "polars",
    "pyarrow",
)

PROBE = """
import json, sys
from prism.cli.app import main
sys.argv = ["prism", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("\\nLOADED=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


def loaded_after(*argv: str) -> list[str]:
    """Run ``prism ARGV`` in a fresh interpreter and return the heavy modules it imported."""
    probe = PROBE.replace("{heavy}", repr(set(HEAVY)))
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(list(argv))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    marker = done.stdout.rpartition("LOADED=")
    assert marker[1], done.stdout + done.stderr
    return sorted({name.split(".")[0] for name in json.loads(marker[2])})


@pytest.mark.parametrize("argv", [("--help",), ("config",), ("config", "--json"), ("db", "--help")])
def test_light_commands_import_no_heavy_library(argv: tuple[str, ...]) -> None:
    assert loaded_after(*argv) == []


def test_listing_the_strategies_imports_no_heavy_library() -> None:
    assert loaded_after("strategies") == []


def test_research_help_does_not_import_mlflow_or_papermill() -> None:
    assert loaded_after("research", "--help") == []


def test_every_listed_help_line_is_the_commands_own_first_paragraph() -> None:
    for name, entry in COMMANDS.items():
        command = load_command(name, entry, "rich")
        own = " ".join((command.help or "").split("\n\n")[0].split())
        assert entry.help == own, name


def test_every_listed_command_resolves_to_a_click_command() -> None:
    for name, entry in COMMANDS.items():
        command = load_command(name, entry, "rich")
        assert command.name == name
        assert isinstance(command, typer.core.TyperCommand | typer.core.TyperGroup)
