"""A research run: ``prism research run notebooks/02_backtest_strategy.ipynb`` as a whole process,
against papermill running an empty notebook as its own process as the peer: what any
papermill-executed notebook costs here (papermill's imports, a kernel's start and shutdown).

Two rows. Warm: the second run in a row and after, through the resident research worker the
first run started (:mod:`prism.research.worker`: MLflow and papermill imported, the kernel warm),
median of ``RUNS`` runs, each in turn with the peer. Cold: the first run, which starts the worker
(after one ``--no-worker`` run that fills the OS's file cache and numba's cache), against the
peer's median. The workspace is fresh (its embedded PostgreSQL, an empty MLflow store) with the
bundled daily bars ingested. Each row gives wall and CPU seconds (CPU, children included, is
what the machine's load does not inflate; a warm run's work happens in the worker, so its CPU is
the client's alone) and the megabytes the run stored, as the command prints them.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prism.core.settings import project_root
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.research.worker import stop_worker
from tests.benchmarks.bench_cli import PRISM, timed_run
from tests.benchmarks.measure import Measurement
from tests.benchmarks.row import Row, run_alone
from tests.benchmarks.workspace import fresh_workspace

RUNS = 3
NOTEBOOK = project_root() / "notebooks" / "02_backtest_strategy.ipynb"
EMPTY_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "source": "", "outputs": [], "execution_count": None}
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def timed_research(argv: list[str]) -> tuple[float, float, float]:
    """Run ``argv`` (a research run); return its wall and CPU seconds and the megabytes it
    says it stored."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = re.search(r"stored: ([\d.]+) MB", done.stdout + done.stderr)
    return wall, cpu, float(found.group(1)) if found else math.nan


def run(notes: list[str]) -> list[Row]:
    """Time cold and warm research runs of notebook 02 and papermill's empty notebook."""
    with tempfile.TemporaryDirectory() as tmp, fresh_workspace(Path(tmp)) as (engine, settings):
        ingest(engine, ArchBarSource())
        empty = Path(tmp) / "empty.ipynb"
        empty.write_text(json.dumps(EMPTY_NOTEBOOK))
        ours = [str(PRISM), "research", "run", str(NOTEBOOK)]
        peer = [sys.executable, "-m", "papermill", str(empty), str(Path(tmp) / "out.ipynb")]
        peer += ["-k", "python3", "--no-progress-bar"]
        try:
            timed_research([*ours, "--no-worker"])
            subprocess.run(peer, capture_output=True, check=True)
            cold = timed_research(ours)
            measured = []
            for _ in range(RUNS):
                measured.append((timed_research(ours), timed_run(peer)))
        finally:
            stop_worker(settings)
        wall, cpu, megabytes = (statistics.median(m[0][k] for m in measured) for k in range(3))
        peer_wall, peer_cpu = (statistics.median(m[1][k] for m in measured) for k in range(2))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    notes.append(
        f"research run: warm = median of {RUNS} runs through the resident worker, each in turn "
        f"with the peer; cold = the first run, starting the worker; load average at the end "
        f"{load} on {os.cpu_count()} cores"
    )
    return [
        Row(
            f"`prism research run` notebook 02, warm: resident worker (median {wall:.1f} s, "
            f"client CPU {cpu:.1f} s; peer CPU {peer_cpu:.1f} s; {megabytes:.2f} MB stored)",
            "runs/h",
            3600,
            Measurement(wall, math.nan),
            Measurement(peer_wall, math.nan),
            "papermill, empty notebook",
        ),
        Row(
            f"`prism research run` notebook 02, cold: first run, starts the worker "
            f"({cold[0]:.1f} s)",
            "runs/h",
            3600,
            Measurement(cold[0], math.nan),
            Measurement(peer_wall, math.nan),
            "papermill, empty notebook",
        ),
    ]


if __name__ == "__main__":
    run_alone(run)
