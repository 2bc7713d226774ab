"""What ``prism runner serve`` needs besides the flows: a local Prefect server when none is
configured, and the ingest step its ``ingest_bars`` flow runs.

Schedules need a Prefect server. With ``PREFECT_API_URL`` unset, :func:`local_prefect_server`
starts ``prefect server start`` on a free local port (its SQLite database under the workspace's
Prefect home), points this process at it, and stops it on exit; the Prefect UI is then at that
address to watch the runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from prism.core.errors import PrismError, TransientError
from prism.core.settings import Settings, service_environment
from prism.data.gaps import SourceFactory, backfill, find_gaps, is_feed, source_factory
from prism.data.store import ingest
from prism.live.deployments import list_deployments

STARTUP_SECONDS = 180.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def local_prefect_server(settings: Settings) -> Iterator[str]:
    """Yield the Prefect API URL: ``PREFECT_API_URL`` if set, else that of a local server
    started here (and stopped, with its children, when the block exits)."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        **service_environment(settings),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    prefect = Path(sys.executable).parent / "prefect"
    log = settings.prefect_home / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(api_url):
            if server.poll() is not None:
                raise PrismError(f"the local Prefect server exited at start; see {log}")
            if time.monotonic() > deadline:
                raise TransientError(
                    f"the local Prefect server did not answer within {STARTUP_SECONDS:.0f} s; "
                    f"see {log}, or set PREFECT_API_URL to a running server"
                )
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = api_url
        yield api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        if server.poll() is None:
            os.killpg(server.pid, 15)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()


def ensure_process_pool(name: str) -> bool:
    """Create the process work pool ``name`` with Prefect's default job template unless it
    exists; return whether it was created."""
    # Imported here: Prefect takes ~10 s to import; only the work-pool path needs it.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return True


def ingest_deployment_bars(
    engine: Engine,
    now: pd.Timestamp | None = None,
    registry: Mapping[str, SourceFactory] | None = None,
) -> dict[str, int]:
    """Fetch the bars newer than the newest stored one of every enabled deployment's series
    whose source is a live feed (Yahoo, a ccxt exchange: the source its newest bar came from),
    then backfill the open gaps of those series; return how many bars were inserted and how
    many gap bars were healed. ``registry`` replaces the network sources (tests)."""

    moment = now if now is not None else pd.Timestamp.now(tz="UTC")
    inserted = healed = 0
    for deployment in list_deployments(engine, enabled_only=True):
        with engine.connect() as conn:
            newest = conn.execute(
                text(
                    "SELECT DISTINCT ON (symbol) symbol, time, source FROM market_data.ohlcv "
                    "WHERE symbol = ANY(:s) AND timeframe = :tf ORDER BY symbol, time DESC"
                ),
                {"s": list(deployment.symbols), "tf": deployment.timeframe},
            ).all()
        for symbol, last, source_name in newest:
            factory = source_factory(source_name, registry) if is_feed(source_name) else None
            source = factory and factory(symbol, deployment.timeframe, pd.Timestamp(last), moment)
            if source is not None:
                inserted += ingest(engine, source).inserted
        gaps = find_gaps(engine, list(deployment.symbols), deployment.timeframe)
        healed += sum(result.filled for result in backfill(engine, gaps, registry))
    return {"inserted": inserted, "healed": healed}
