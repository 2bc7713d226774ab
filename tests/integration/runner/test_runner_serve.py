"""``python -m runner.serve`` (what ``prism runner serve`` runs) with no PREFECT_API_URL: it
starts a local Prefect server under the workspace, registers the runner's five deployments on
it, and stops the server when it is stopped itself (SIGINT, like Ctrl-C, or SIGTERM: exit 0, no
traceback); a bad alert URL stops it before anything starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from prism.core.settings import project_root

DEPLOYMENTS = {"ingest", "trade", "reconcile", "alerts", "daily", "maintenance"}
STARTUP_SECONDS = 240.0


def serve_environment(settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PRISM_HOME": str(home),
            "PRISM_MLRUNS_DIR": str(home / "mlruns"),
            "PRISM_DATABASE_URL": settings.database_url.get_secret_value(),
            "PRISM_RUNNER_CYCLE_SECONDS": "3600",
            "PRISM_RUNNER_INGEST_SECONDS": "3600",
        }
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PRISM_ALERT_URLS", None)
    return env


def server_processes(port: int) -> list[int]:
    """Return the pids whose command line names the Prefect server ``port``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"prefect" in b" ".join(args) and str(port).encode() in args:
            found.append(int(cmdline.parent.name))
    return found


def registered(api_url: str) -> set[str]:
    try:
        response = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return set()
    return {d["name"] for d in response.json()} if response.status_code == 200 else set()


@pytest.mark.timeout(420)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_serve_starts_a_local_prefect_server_registers_the_flows_and_stops_it(
    settings, tmp_path, stop
):
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.serve"],
        env=serve_environment(settings, tmp_path / "home"),
        cwd=project_root(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        api_url = None
        names: set[str] = set()
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and process.poll() is None and names != DEPLOYMENTS:
            found = [m for line in list(lines) if (m := re.search(r"Prefect API at (\S+);", line))]
            api_url = found[0].group(1) if found else None
            names = registered(api_url) if api_url else set()
            time.sleep(1)
        assert api_url is not None, "".join(lines)[-3000:]
        assert names == DEPLOYMENTS, "".join(lines)[-3000:]
        port = int(re.search(r":(\d+)/api", api_url).group(1))  # type: ignore[union-attr]
        assert server_processes(port)
        assert (tmp_path / "home" / "prefect").is_dir()

        process.send_signal(stop)
        code = process.wait(timeout=90)

        assert code == 0, "".join(lines)[-3000:]
        reader.join(timeout=10)
        assert "runner stopped: " in "".join(lines), "".join(lines)[-3000:]
        assert "Traceback" not in "".join(lines), "".join(lines)[-6000:]
        assert server_processes(port) == []
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api_url}/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_a_bad_alert_url_before_starting_anything(settings, tmp_path):
    env = {**serve_environment(settings, tmp_path / "home"), "PRISM_ALERT_URLS": "nope://x"}

    done = subprocess.run(
        [sys.executable, "-m", "runner.serve"],
        env=env,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "alert URL nope://***" in done.stderr and "PRISM_ALERT_URLS" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "prefect" / "server.log").exists()
