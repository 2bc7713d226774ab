"""``prism api`` as a real uvicorn process: a key is exchanged for a token over HTTP, bars are
read, a WebSocket client receives the NOTIFY of a bar inserted into the database and a
Server-Sent Events client that of a fill."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from websockets.sync.client import connect

from prism.api import accounts
from tests.integration.api.conftest import SIGNING
from tests.integration.api.server import api_env, running_api
from tests.integration.api.test_api_routes import insert_order_and_fill

pytestmark = pytest.mark.timeout(180)


def test_prism_api_serves_tokens_bars_and_the_stream(engine, settings, database_url, tmp_path):
    env = api_env(settings, database_url, tmp_path, SIGNING)
    with running_api(env) as base:
        port = base.rsplit(":", 1)[1]
        made, _ = accounts.create_key(engine, "server-test", "viewer", "test")
        token = httpx.post(f"{base}/api/v1/auth/api-key", json={"api_key": made.key}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert httpx.get(f"{base}/api/v1/data/bars/SPX", headers=headers).json()["bars"] == []
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Prism API"
        url = f"ws://127.0.0.1:{port}/api/v1/stream?token={token['access_token']}"
        with connect(url, open_timeout=30) as ws:
            ws.send(json.dumps({"subscribe": ["bars"], "symbols": ["SPX"]}))
            assert json.loads(ws.recv(timeout=30))["subscribed"] == ["bars"]
            now = datetime.now(UTC).replace(microsecond=0)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO market_data.ohlcv (time, symbol, timeframe, open, high, low, "
                        "close, volume, source) VALUES (:t, 'SPX', '1m', 10, 12, 9, 11, 500, "
                        "'test')"
                    ),
                    {"t": now},
                )
            message = json.loads(ws.recv(timeout=30))
        assert message["channel"] == "bars"
        assert (message["data"]["symbol"], message["data"]["close"]) == ("SPX", 11)
        assert datetime.fromisoformat(message["data"]["time"]) == now
        sse = f"{base}/api/v1/stream/sse"
        refused = httpx.get(sse, params={"channels": "events"}, headers=headers)
        assert refused.status_code == 403 and "needs role admin" in refused.json()["detail"]
        with httpx.stream(
            "GET", sse, params={"channels": "fills", "symbols": "SPX"}, headers=headers, timeout=30
        ) as events:
            lines = events.iter_lines()
            assert next(lines) == "event: subscribed"
            insert_order_and_fill(engine, "sse-1")
            while next(lines) != "event: fills":
                pass
            pushed = json.loads(next(lines).removeprefix("data: "))
        assert (pushed["fill_id"], pushed["symbol"]) == ("fill-sse-1", "SPX")
        scraped = httpx.get(f"{base}/metrics").text
        assert 'prism_api_request_seconds_count{method="POST",route="/api/v1/auth/api-key"' in (
            scraped
        )
