"""The README's ``curl`` session, run as written against ``prism api`` as a real server: the
bash block under "## The API" is read from README.md and its ``curl`` lines are run by bash,
with the server's port, a real password and key in place of the placeholders, ``curl -f`` so
an HTTP error fails the session, and ``$TOKEN`` carried from the login line to the others.
What they printed and changed is checked against the database, so the README cannot show a
call the API does not answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from prism.api import accounts
from prism.data.bars import normalise
from prism.data.store import upsert_bars
from prism.live import deployments
from tests.integration.api.conftest import SIGNING
from tests.integration.api.server import api_env, running_api
from tests.integration.api.test_api_routes import insert_order_and_fill
from tests.integration.runner_support import deploy

pytestmark = pytest.mark.timeout(300)

README = Path(__file__).parents[3] / "README.md"
PASSWORD = "correct horse battery staple"


def readme_session() -> list[str]:
    """Return the commands of the README's API session, continuation lines joined."""
    section = README.read_text().split("## The API", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "no bash block in the README's API section"
    joined = block.group(1).replace("\\\n", " ")
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_readmes_curl_session_runs_against_the_server(
    stocked, settings, database_url, tmp_path
):
    commands = readme_session()
    calls = [c for c in commands if "curl" in c]
    assert any("auth/token" in c for c in calls) and any("/halt" in c for c in calls)
    assert any("research/backtests" in c for c in calls)
    assert any("runner/orders" in c for c in calls) and any("data/bars" in c for c in calls)
    user = re.search(r"prism api users add (\S+) --role (\S+)", "\n".join(commands))
    assert user, "the session creates no user"
    accounts.add_user(stocked, user.group(1), PASSWORD, user.group(2), "readme-test")
    made, _ = accounts.create_key(stocked, "readme", "trader", "readme-test")
    halted = re.search(r"deployments/(\w+)/halt", "\n".join(calls))
    assert halted
    deploy(stocked, halted.group(1))
    insert_order_and_fill(stocked, "readme-1")
    minutes = _btc_minutes()
    upsert_bars(stocked, normalise(minutes))
    upload = pd.DataFrame(
        {
            "time": ["2024-02-01", "2024-02-02", "2024-02-05", "2024-02-06"],
            "open": [10.0, 11.0, 12.0, 13.0],
            "high": [11.0, 12.0, 11.0, 14.0],  # the third high under its low: quarantined
            "low": [9.0, 10.0, 11.5, 12.0],
            "close": [10.5, 11.5, 11.8, 13.5],
            "volume": [100.0, 100.0, 100.0, 100.0],
        }
    )
    upload.to_csv(tmp_path / "bars.csv", index=False)
    env = api_env(settings, database_url, tmp_path, SIGNING)
    with running_api(env) as base:
        host = base.removeprefix("http://")
        shell = {"TOKEN": ""}
        by_call: dict[str, str] = {}
        for call in calls:
            line = (
                call.replace("localhost:8000", host)
                .replace("password=...", f"password={PASSWORD.replace(' ', '+')}")
                .replace("prk_...", made.key)
            )
            if line.startswith("TOKEN="):
                line += '; echo "$TOKEN"'
            script = f'set -euo pipefail; curl() {{ command curl -f "$@"; }}; {line}'
            done = subprocess.run(
                ["bash", "-c", script],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, **shell},
                cwd=tmp_path,
            )
            assert done.returncode == 0, (call, done.stderr, done.stdout)
            if line.startswith("TOKEN="):
                shell["TOKEN"] = done.stdout.strip()
            else:
                by_call[call] = done.stdout
    assert shell["TOKEN"].count(".") == 2
    for call, answer in by_call.items():
        if "api-key" in call:
            assert json.loads(answer)["role"] == "trader"
        elif "source=aggregate" in call:
            [hour] = json.loads(answer)["bars"]
            assert (hour["open"], hour["close"]) == (
                minutes["open"].iloc[0],
                minutes["close"].iloc[-1],
            )
            assert (
                hour["high"] == minutes["high"].max() and hour["volume"] == minutes["volume"].sum()
            )
        elif "data/ingest" in call:
            loaded = json.loads(answer)
            assert (loaded["inserted"], loaded["quarantined"]) == (3, 1)
            assert [r["row"]["close"] for r in loaded["rejects"]] == [11.8]
        elif "notebook-runs" in call:
            assert json.loads(answer)["job_id"]
        elif "format=csv" in call:
            assert answer.splitlines()[0].startswith("time,open,high,low,close")
        elif "data/bars" in call:
            page = json.loads(answer)
            with stocked.connect() as conn:
                first = conn.execute(
                    text(
                        "SELECT close FROM market_data.ohlcv WHERE symbol = 'SPX' "
                        "AND timeframe = '1d' ORDER BY time LIMIT 1"
                    )
                ).scalar_one()
            assert page["bars"][0]["close"] == pytest.approx(float(first))
            assert pd.Timestamp(page["next_cursor"]) == pd.Timestamp(page["bars"][-1]["time"])
        elif "backtests" in call:
            result = json.loads(answer)
            assert result["bars"] > 0 and "sharpe" in result["metrics"]
        elif "runner/orders" in call:
            assert [o["client_order_id"] for o in json.loads(answer)] == ["readme-1"]
        elif "/halt" in call:
            assert json.loads(answer)["changed"] is True
    state = deployments.get_deployment(stocked, halted.group(1))
    assert (state.halted, state.halted_by) == (True, user.group(1))


def _btc_minutes() -> pd.DataFrame:
    """One hour of BTC minute bars, for the session's read of the hourly rollup."""
    times = pd.date_range("2024-01-02 10:00", periods=60, freq="1min", tz="UTC")
    close = 40_000 + np.arange(60.0)
    return pd.DataFrame(
        {
            "time": times,
            "symbol": "BTC",
            "timeframe": "1m",
            "open": close - 0.5,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 2.0,
            "source": "readme-test",
        }
    )
