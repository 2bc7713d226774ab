"""``prism runner serve`` stops cleanly, as an operator stops it: started in its own process
group (a terminal's foreground job), serving and trading, then SIGINT to the whole group (Ctrl-C)
or SIGTERM to the command (a service manager). It exits 0 within a bound with a clear line and
no traceback, leaves no Prefect server, runner or flow-run process behind, and its ledger holds
exactly the orders and fills of an uninterrupted cycle. A server a SIGKILLed run left behind is
found and stopped at the next start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from prism.core.settings import project_root
from prism.data.sources import ArchBarSource
from prism.live import cycle
from prism.live.serving import RUNNER_STOP_MARGIN, SERVER_STOP_SECONDS
from prism.registry import promotion
from prism.strategies import SmaCrossover
from tests.integration.runner.test_prefect_listings import prefect_cli
from tests.integration.runner.test_runner_serve import serve_environment
from tests.integration.runner_support import (
    LENIENT,
    deploy,
    loosen_limits,
    research_run,
    use_mlflow_store,
)

MODEL = "served-model"
STALE_INTERVALS = "1000000"
"""The bundled bars end in 2018: judged against today's clock they would be stale."""
STARTUP_SECONDS = 300.0
STOP_SECONDS = 30
STOP_BOUND_SECONDS = STOP_SECONDS + RUNNER_STOP_MARGIN + SERVER_STOP_SECONDS + 10
"""The designed bound: flow runs in flight get STOP_SECONDS, the runner then has the margin to
cancel them and exit, the server its grace to stop, plus slack for a busy machine."""
ORDERS = (
    "SELECT symbol, decided_at, side, quantity, status, filled_quantity, average_fill_price, "
    "commission FROM trading.orders WHERE deployment = :d ORDER BY decided_at, symbol"
)
FILLS = (
    "SELECT symbol, time, side, quantity, price, commission FROM trading.fills "
    "WHERE deployment = :d ORDER BY time, symbol"
)


def processes_of(home: Path) -> list[str]:
    """Return ``pid: command`` of every process whose environment names ``home`` as
    PRISM_HOME: the supervisor, the runner, the Prefect server and flow-run processes."""
    marker = f"PRISM_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def served(stocked, settings, tmp_path, monkeypatch):
    """A deployment ``served`` and a disabled twin ``reference``, both trading the SMA 2/3
    crossover (long both symbols at the newest bar) registered as champion of MODEL in an
    MLflow store under ``tmp_path``; return the settings of that store."""
    store_dir = tmp_path / "mlruns"
    use_mlflow_store(monkeypatch, store_dir)
    store = settings.model_copy(
        update={
            "mlruns_dir": store_dir,
            "model_name": MODEL,
            "runner_stale_intervals": int(STALE_INTERVALS),
        }
    )
    run_id = research_run(store, SmaCrossover(fast=2, slow=3), ArchBarSource().fetch())
    assert promotion.promote(store, run_id, LENIENT, "test", engine=stocked).promoted
    deploy(stocked, "served", model_name=MODEL)
    loosen_limits(stocked, "test")
    return store


def serve_env(settings, store, home: Path) -> dict[str, str]:
    return {
        **serve_environment(settings, home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{store.mlruns_dir}/mlflow.db",
        "PRISM_MLRUNS_DIR": str(store.mlruns_dir),
        "PRISM_RUNNER_CYCLE_SECONDS": "15",
        "PRISM_RUNNER_STALE_INTERVALS": STALE_INTERVALS,
        "PRISM_RUNNER_STOP_SECONDS": str(STOP_SECONDS),
    }


def start_serving(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``prism runner serve`` as a terminal starts a job: its own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "prism"), "runner", "serve"],
            env=env,
            cwd=project_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def wait_until_traded(process, log: Path, engine, deployment: str | None) -> str:
    """Wait until the runner serves and (unless ``deployment`` is None) a trade cycle has
    written orders of ``deployment``; return the API URL."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        with engine.connect() as conn:
            orders = (
                deployment is None
                or conn.execute(
                    text("SELECT count(*) FROM trading.orders WHERE deployment = :d"),
                    {"d": deployment},
                ).scalar_one()
            )
        found = re.search(r"Prefect API at (\S+);", log.read_text(errors="replace"))
        if orders and found:
            return found.group(1)
        time.sleep(1)
    raise AssertionError(log.read_text(errors="replace")[-4000:])


def ledger(engine, deployment: str) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            "orders": [tuple(r) for r in conn.execute(text(ORDERS), {"d": deployment})],
            "fills": [tuple(r) for r in conn.execute(text(FILLS), {"d": deployment})],
        }


def uninterrupted(engine, store) -> dict[str, list[tuple]]:
    """The ledger of one cycle of the same deployment that nothing interrupted."""
    deploy(engine, "reference", model_name=MODEL)
    report = cycle.run_guarded(engine, store, "reference")
    assert report.outcome == "traded" and report.orders > 0, report
    return ledger(engine, "reference")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["sigint-to-group", "sigterm-to-parent"], ids=["ctrl-c", "sigterm"])
def test_serve_stops_cleanly_and_leaves_nothing_running(served, stocked, settings, tmp_path, how):
    home = tmp_path / "home"
    log = tmp_path / "serve.log"
    process = start_serving(serve_env(settings, served, home), log)
    try:
        api_url = wait_until_traded(process, log, stocked, "served")
        listed = prefect_cli(
            api_url, str(home / "prefect"), "flow-run", "ls", "--state", "Completed"
        )
        assert listed.returncode == 0 and "trade_all" in listed.stdout, listed.stderr[-2000:]
        assert len(processes_of(home)) >= 3  # supervisor, runner, server (and its workers)

        server_log = home / "prefect" / "server.log"
        logged_before_stop = server_log.stat().st_size
        began = time.monotonic()
        if how == "sigint-to-group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STOP_BOUND_SECONDS + 60)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    print(f"{how}: exit {code} after {took:.1f} s")

    assert code == 0, output[-4000:]
    assert took < STOP_BOUND_SECONDS, output[-4000:]
    name = "SIGINT" if how == "sigint-to-group" else "SIGTERM"
    assert f"prism runner serve: stopped on {name}" in output, output[-4000:]
    assert "Traceback" not in output, output[-6000:]
    with server_log.open("rb") as log_file:
        log_file.seek(logged_before_stop)
        after_stop = log_file.read().decode(errors="replace")
    # the only traceback the server may log is SQLite's lock contention under load, which it
    # logs while running too (its scheduler against state writes), not the stop
    for block in re.split(r"^Traceback \(most recent call last\):$", after_stop, flags=re.M)[1:]:
        error = re.split(r"^\d\d:\d\d:\d\d\.\d+ \|", block, maxsplit=1, flags=re.M)[0]
        assert "database is locked" in error, error[-3000:]
    assert processes_of(home) == []
    assert not (home / "prefect" / "server.json").exists()
    assert ledger(stocked, "served") == uninterrupted(stocked, served)
    assert ledger(stocked, "served")["orders"], "the served cycle traded nothing"


@pytest.mark.timeout(600)
def test_a_server_left_by_a_killed_run_is_stopped_at_the_next_start(
    served, stocked, settings, tmp_path
):
    home = tmp_path / "home"
    env = serve_env(settings, served, home)
    first = start_serving(env, tmp_path / "first.log")
    try:
        wait_until_traded(first, tmp_path / "first.log", stocked, "served")
        record = (home / "prefect" / "server.json").read_text()
        first.kill()  # SIGKILL to the supervisor alone: its server is left running
        first.wait()
        server_pid = int(re.search(r'"pid": (\d+)', record).group(1))  # type: ignore[union-attr]
        time.sleep(2)
        assert f"{server_pid}: " in "\n".join(processes_of(home))

        second = start_serving(env, tmp_path / "second.log")
        try:
            wait_until_traded(second, tmp_path / "second.log", stocked, None)
            output = (tmp_path / "second.log").read_text(errors="replace")
            assert "stopped a Prefect server left behind by an earlier run" in output
            assert f"pid {server_pid}" in output
            assert not [p for p in processes_of(home) if p.startswith(f"{server_pid}: ")]
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=STOP_BOUND_SECONDS + 60) == 0
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
                second.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert processes_of(home) == []
