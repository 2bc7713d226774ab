"""Start-up of the ``prism`` command: each command as a whole process (median of 5 runs after
one warm-up, run in turn with its peer), against a bare Typer app with two commands as the
peer: the least a Typer command line costs on this machine. ``python -c pass`` is measured in
the same run and given as a note.

The commands run in a fresh workspace (its embedded PostgreSQL running, an MLflow store with one
registered version), so ``prism db status`` reads a live server and ``prism models list`` reads
the store.
"""

from __future__ import annotations

import math
import os
import resource
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


def timed_run(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` to its end; return its wall-clock seconds and its CPU seconds (user and
    system, its own children's included), which the machine's load does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_seconds(
    argv: list[str], peer: list[str] | None = None, runs: int = RUNS
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the median (wall, CPU) seconds of ``argv`` and of ``peer`` (run in turn with it,
    A B A B, so both see the same machine) over ``runs`` runs after a warm-up of each."""
    commands = [argv] if peer is None else [argv, peer]
    for command in commands:
        subprocess.run(command, capture_output=True, check=True)
    times: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for command, kept in zip(commands, times, strict=True):
            kept.append(timed_run(command))
    medians = [
        (statistics.median(w for w, _ in kept), statistics.median(c for _, c in kept))
        for kept in times
    ]
    return medians[0], medians[-1]


def register_a_version(tracking_uri: str, folder: Path) -> None:
    """Create the workspace's MLflow store with one registered version, so ``prism models list``
    reads a store that exists and has a row to show."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model("bench-model")
    client.create_model_version("bench-model", source=folder.as_uri(), run_id=None)


def run(notes: list[str]) -> list[Row]:
    """Time each command and the peers; return one row per command."""
    with tempfile.TemporaryDirectory() as tmp, fresh_workspace(Path(tmp)) as (_, settings):
        register_a_version(settings.mlflow_tracking_uri, Path(tmp))
        peer_file = Path(tmp) / "bare_typer.py"
        peer_file.write_text(BARE_TYPER)
        (nothing, _), _ = median_seconds([sys.executable, "-c", "pass"])
        rows = []
        for command in COMMANDS:
            peer_argv = [sys.executable, str(peer_file)]
            peer_argv += ["--help"] if command == ("--help",) else ["hello"]
            (ours, ours_cpu), (peer, peer_cpu) = median_seconds([str(PRISM), *command], peer_argv)
            rows.append(
                Row(
                    f"`prism {' '.join(command)}` start-up (median {ours:.2f} s, "
                    f"CPU {ours_cpu:.2f} s; peer CPU {peer_cpu:.2f} s)",
                    "starts/min",
                    60,
                    Measurement(ours, math.nan),
                    Measurement(peer, math.nan),
                    f"bare Typer app {'--help' if command == ('--help',) else 'command'}",
                )
            )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    notes.append(
        f"CLI start-up: `python -c pass` takes {nothing:.3f} s here (median of {RUNS}); "
        f"load average at the end {load} on {os.cpu_count()} cores"
    )
    return rows
