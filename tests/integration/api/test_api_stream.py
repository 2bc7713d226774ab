"""The WebSocket stream: a real connection receives the NOTIFY of a real insert, filtered by
channel and symbol; channels above the caller's role are refused; a client that does not keep
up is dropped with close code 1013 while another one gets every message."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.websockets import WebSocketDisconnect

from prism.api.app import create_app
from prism.api.stream import SLOW_CLIENT, UNAUTHORISED
from tests.integration.api.test_api_routes import insert_order_and_fill

pytestmark = pytest.mark.timeout(120)


def token(app, role: str) -> str:
    return app.state.prism.keys.issue(f"{role}-user", role, 5, "password")[0]


def test_a_subscriber_receives_the_fill_of_its_symbol_from_a_real_insert(client, app, engine):
    with client.websocket_connect(f"/api/v1/stream?token={token(app, 'viewer')}") as ws:
        ws.send_json({"subscribe": ["fills", "events"], "symbols": ["SPX"]})
        answer = ws.receive_json()
        assert answer["subscribed"] == ["fills"]
        assert answer["refused"] == {"events": "needs role admin"}
        insert_order_and_fill(engine, "s-ndx", symbol="NDX")
        insert_order_and_fill(engine, "s-spx", symbol="SPX")
        message = ws.receive_json()
    assert message["channel"] == "fills"
    assert (message["data"]["fill_id"], message["data"]["symbol"]) == ("fill-s-spx", "SPX")
    assert float(message["data"]["price"]) == 101.5


def test_a_connection_without_a_valid_token_is_closed_as_a_policy_violation(client):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/api/v1/stream?token=not-a-token") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == UNAUTHORISED


def test_a_slow_client_is_dropped_and_a_fast_one_gets_every_fill(api_settings, engine):
    app = create_app(api_settings, engine)
    url = f"/api/v1/stream?token={token(app, 'viewer')}"
    with (
        TestClient(app) as client,
        client.websocket_connect(url) as fast,
        client.websocket_connect(url + "&queue=2") as slow,
    ):
        for ws in (fast, slow):
            ws.send_json({"subscribe": ["orders"]})
            assert ws.receive_json()["subscribed"] == ["orders"]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO trading.accounts (deployment, initial_capital, cash) "
                    "VALUES ('desk', 1, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, "
                    "quantity, broker, strategy, decided_at) SELECT 'burst-' || i, 'desk', "
                    "'SPX', 'buy', i, 'paper', 'x', now() FROM generate_series(1, 40) i"
                )
            )
        received = [fast.receive_json()["data"]["client_order_id"] for _ in range(40)]
        with pytest.raises(WebSocketDisconnect) as dropped:
            while True:
                slow.receive_json()
    assert received == [f"burst-{i}" for i in range(1, 41)]
    assert dropped.value.code == SLOW_CLIENT
