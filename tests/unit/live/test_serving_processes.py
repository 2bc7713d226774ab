"""The process bookkeeping behind ``prism runner serve``'s stop, on real processes: a session is
found and stopped whole (also after its leader exited), SIGINT and SIGTERM share one path where a
second signal forces, and a recorded server whose owner is gone is stopped while one whose owner
still runs is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prism.core.errors import PrismError
from prism.core.settings import Settings
from prism.live.serving import (
    RECORD,
    StopSignals,
    session_processes,
    start_time,
    stop_session,
    stop_stale_server,
)

TREE = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "time.sleep(120)\n"
)
"""A session leader with one child, both sleeping."""


def _session(args: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, start_new_session=True)
    deadline = time.monotonic() + 20
    while len(session_processes(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


def test_a_session_is_stopped_whole_even_after_its_leader_is_gone():
    process = _session([sys.executable, "-c", TREE])
    try:
        members = session_processes(process.pid)
        assert process.pid in members and len(members) == 2
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        (orphan,) = session_processes(process.pid)  # the child outlives its leader

        assert stop_session(process.pid, grace=5) == [orphan]
        assert session_processes(process.pid) == []
    finally:
        stop_session(process.pid, grace=0)


def test_the_first_signal_asks_for_a_stop_and_a_second_forces_it():
    # the handlers the process had (SIGINT is ignored in a background job, not default there)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopSignals() as signals:
        assert not signals.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert signals.requested and not signals.forced
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert signals.forced and signals.received == ["SIGTERM", "SIGINT"]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def _record(settings: Settings, server: int, owner: int) -> None:
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": server,
        "port": 9,
        "started": start_time(server),
        "owner": owner,
        "owner_started": start_time(owner),
    }
    (settings.prefect_home / RECORD).write_text(json.dumps(record))


def test_a_server_whose_owner_is_gone_is_stopped_and_one_whose_owner_runs_is_refused(
    tmp_path,
):
    settings = Settings(home=tmp_path / "home")
    server = _session([sys.executable, "-c", TREE])
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _record(settings, server.pid, owner.pid)
        with pytest.raises(PrismError, match=f"another process \\(pid {owner.pid}\\)"):
            stop_stale_server(settings)
        assert len(session_processes(server.pid)) == 2

        owner.kill()
        owner.wait()
        note = stop_stale_server(settings)

        assert note is not None and f"pid {server.pid}, port 9, 2 process(es)" in note
        assert session_processes(server.pid) == []
        assert not (settings.prefect_home / RECORD).exists()
        assert stop_stale_server(settings) is None
    finally:
        owner.kill()
        stop_session(server.pid, grace=0)
        server.wait()
