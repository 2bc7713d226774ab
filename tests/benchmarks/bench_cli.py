"""Start-up of the ``prism`` command: each command as a whole process (median of 5 runs after
one warm-up, run in turn with its peer), against a bare Typer app with two commands as the
peer: the least a Typer command line costs on this machine. ``python -c pass`` is measured in
the same run and given as a note.

The commands run in a fresh workspace (its embedded PostgreSQL running, an empty MLflow store),
so ``prism db status`` reads a live server and ``prism models list`` opens the store.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.measure import Measurement
from tests.benchmarks.row import Row
from tests.benchmarks.workspace import fresh_workspace

RUNS = 5
PRISM = Path(sys.executable).with_name("prism")
BARE_TYPER = '''
import typer

app = typer.Typer(add_completion=False)


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def bye() -> None:
    """Say goodbye."""


app()
'''
COMMANDS: list[tuple[str, ...]] = [
    ("--help",),
    ("config",),
    ("db", "status"),
    ("strategies",),
    ("models", "list"),
]


def median_seconds(argv: list[str], peer: list[str] | None = None) -> tuple[float, float]:
    """Return the median wall-clock seconds of ``argv`` (and of ``peer``, run in turn with it,
    A B A B, so both see the same machine) over :data:`RUNS` runs after a warm-up of each."""
    commands = [argv] if peer is None else [argv, peer]
    for command in commands:
        subprocess.run(command, capture_output=True, check=True)
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(RUNS):
        for command, kept in zip(commands, times, strict=True):
            started = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            kept.append(time.perf_counter() - started)
    medians = [statistics.median(kept) for kept in times]
    return medians[0], medians[-1]


def run(notes: list[str]) -> list[Row]:
    """Time each command and the peers; return one row per command."""
    with tempfile.TemporaryDirectory() as tmp, fresh_workspace(Path(tmp)):
        peer_file = Path(tmp) / "bare_typer.py"
        peer_file.write_text(BARE_TYPER)
        nothing, _ = median_seconds([sys.executable, "-c", "pass"])
        rows = []
        for command in COMMANDS:
            peer_argv = [sys.executable, str(peer_file)]
            peer_argv += ["--help"] if command == ("--help",) else ["hello"]
            ours, peer = median_seconds([str(PRISM), *command], peer_argv)
            rows.append(
                Row(
                    f"`prism {' '.join(command)}` start-up (median {ours:.2f} s)",
                    "starts/min",
                    60,
                    Measurement(ours, math.nan),
                    Measurement(peer, math.nan),
                    f"bare Typer app {'--help' if command == ('--help',) else 'command'}",
                )
            )
    notes.append(f"CLI start-up: `python -c pass` takes {nothing:.3f} s here (median of {RUNS})")
    return rows
