"""The REST routes answer what the library answers: bars page by page and as CSV, a
synchronous backtest, deployments halted and resumed as the caller, orders and fills."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import text

from prism.backtest.engine import BacktestConfig, report, run_backtest
from prism.data.bars import normalise
from prism.data.store import read_bars, upsert_bars
from prism.live import deployments
from prism.strategies import SmaCrossover
from tests.integration.data.test_data_health import _minute_feed
from tests.integration.runner_support import deploy


def test_bars_come_page_by_page_as_json_or_csv_and_match_the_stored_bars(client, auth, stocked):
    stored = read_bars(stocked, ["SPX"], "2017-01-01", "2017-12-31")
    pages, cursors, cursor = [], [], None
    while True:
        params = {"start": "2017-01-01", "end": "2017-12-31", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/data/bars/SPX", params=params, headers=auth("viewer"))
        assert page.status_code == 200, page.text
        pages.append(page.json()["bars"])
        cursor = page.json()["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break
    assert [len(p) for p in pages[:-1]] == [100] * (len(pages) - 1)
    got = pd.DataFrame([bar for p in pages for bar in p])
    assert pd.to_datetime(got["time"], utc=True).tolist() == stored["time"].tolist()
    assert got["close"].tolist() == stored["close"].tolist()
    first = {"start": "2017-01-01", "end": "2017-12-31", "limit": 100, "format": "csv"}
    as_csv = client.get("/api/v1/data/bars/SPX", params=first, headers=auth("viewer"))
    assert as_csv.headers["content-type"].startswith("text/csv")
    csv_closes = pd.read_csv(io.StringIO(as_csv.text))["close"].tolist()
    assert csv_closes == [bar["close"] for bar in pages[0]]
    assert pd.Timestamp(as_csv.headers["x-next-cursor"]) == pd.Timestamp(cursors[0])
    first["format"] = "parquet"
    as_parquet = client.get("/api/v1/data/bars/SPX", params=first, headers=auth("viewer"))
    table = pd.read_parquet(io.BytesIO(as_parquet.content))
    assert table["close"].tolist() == csv_closes
    assert table["time"].tolist() == stored["time"].iloc[:100].tolist()
    rows = client.get("/api/v1/data/symbols", headers=auth("viewer")).json()
    with stocked.connect() as conn:
        expected = conn.execute(
            text("SELECT symbol, count(*) FROM market_data.ohlcv GROUP BY 1 ORDER BY 1")
        ).all()
    assert [(r["symbol"], r["bars"]) for r in rows] == [tuple(e) for e in expected]


def test_json_bars_carry_every_digit_of_the_stored_doubles(client, auth, engine):
    rng = np.random.default_rng(41)
    close = (1 + rng.random(30)) * 1e-4  # a sub-cent coin (prices are stored to 8 decimals)
    frame = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-02", periods=30, freq="1min", tz="UTC"),
            "symbol": "XYZ",
            "timeframe": "1m",
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.random(30) * 1e-3,  # fractional coins: 15 decimals would round them
            "source": "test",
        }
    )
    upsert_bars(engine, normalise(frame))

    page = client.get(
        "/api/v1/data/bars/XYZ", params={"timeframe": "1m", "limit": 20}, headers=auth("viewer")
    )
    rest = client.get(
        "/api/v1/data/bars/XYZ",
        params={"timeframe": "1m", "cursor": page.json()["next_cursor"]},
        headers=auth("viewer"),
    )

    got = pd.DataFrame(page.json()["bars"] + rest.json()["bars"])
    stored = read_bars(engine, ["XYZ"], None, None, "1m")
    assert pd.to_datetime(got["time"], utc=True).tolist() == stored["time"].tolist()
    for column in ("open", "high", "low", "close", "volume"):
        assert got[column].tolist() == stored[column].tolist(), column
    assert rest.json()["next_cursor"] is None and len(page.json()["bars"]) == 20


def test_a_bad_timeframe_is_a_problem_naming_the_parameter(client, auth):
    answer = client.get("/api/v1/data/bars/SPX", params={"timeframe": "7m"}, headers=auth("viewer"))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "timeframe" in answer.json()["detail"]


def test_a_synchronous_backtest_returns_the_engines_metrics(client, auth, stocked):
    body = {
        "strategy": "sma_crossover",
        "symbols": ["SPX", "NDX"],
        "start": "2010-01-01T00:00:00Z",
        "end": "2015-12-31T00:00:00Z",
        "params": {"fast": 10, "slow": 40},
        "allow_gaps": True,
    }
    answer = client.post("/api/v1/research/backtests", json=body, headers=auth("researcher"))
    assert answer.status_code == 200, answer.text
    bars = read_bars(stocked, ["SPX", "NDX"], "2010-01-01", "2015-12-31")
    expected = report(run_backtest(bars, SmaCrossover(fast=10, slow=40), BacktestConfig()), "1d")
    assert answer.json()["bars"] == len(bars)
    assert answer.json()["metrics"]["sharpe"] == float(expected["sharpe"])
    unknown = client.post(
        "/api/v1/research/backtests", json={**body, "strategy": "nope"}, headers=auth("researcher")
    )
    assert unknown.status_code == 400
    assert "nope" in unknown.json()["detail"]


def test_a_backtest_judges_a_stale_feed_at_the_end_of_its_window_as_the_cli_does(
    client, auth, engine
):
    last = pd.Timestamp.now(tz="UTC").floor("min") - pd.Timedelta(hours=3)
    _minute_feed(engine, "BTC/USDT", last)
    body = {"strategy": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1m"}
    body["params"] = {"fast": 2, "slow": 3}

    stale = client.post("/api/v1/research/backtests", json=body, headers=auth("researcher"))
    window = {**body, "end": last.isoformat()}
    current = client.post("/api/v1/research/backtests", json=window, headers=auth("researcher"))

    assert stale.status_code == 404, stale.text
    assert "stale feed: BTC/USDT 1m from ccxt:binance" in stale.json()["detail"]
    assert stale.json()["detail"].endswith(
        'set "allow_gaps": true in the request to run on them anyway'
    )
    assert current.status_code == 200, current.text
    assert current.json()["bars"] == 10


def test_a_trader_halts_and_resumes_a_deployment_as_themselves(client, auth, engine):
    stocked = engine
    deploy(stocked, "desk")
    halted = client.post(
        "/api/v1/runner/deployments/desk/halt", json={"reason": "manual"}, headers=auth("trader")
    )
    assert halted.status_code == 200, halted.text
    state = deployments.get_deployment(stocked, "desk")
    assert (state.halted, state.halted_by, state.halt_reason) == (True, "trader-user", "manual")
    listed = client.get("/api/v1/runner/deployments", headers=auth("viewer")).json()
    assert [(d["name"], d["halted"]) for d in listed] == [("desk", True)]
    resumed = client.post("/api/v1/runner/deployments/desk/resume", headers=auth("trader"))
    assert resumed.json()["changed"] is True
    assert not deployments.get_deployment(stocked, "desk").halted
    with stocked.connect() as conn:
        audit = conn.execute(
            text(
                "SELECT metadata->>'subject', metadata->>'path' FROM audit.system_events "
                "WHERE event_type = 'api_call' ORDER BY id"
            )
        ).all()
    assert audit[-2:] == [
        ("trader-user", "/api/v1/runner/deployments/desk/halt"),
        ("trader-user", "/api/v1/runner/deployments/desk/resume"),
    ]
    changed = client.put(
        "/api/v1/runner/limits/max_position_pct",
        json={"value": 0.15, "deployment": "desk"},
        headers=auth("approver"),
    )
    assert changed.status_code == 200, changed.text
    limits = client.get(
        "/api/v1/runner/limits", params={"deployment": "desk"}, headers=auth("viewer")
    ).json()
    assert limits["max_position_pct"] == 0.15
    assert changed.json()["previous"] != 0.15
    bad = client.put("/api/v1/runner/limits/max_fun", json={"value": 1}, headers=auth("approver"))
    assert bad.status_code == 400 and "max_fun" in bad.json()["detail"]
    missing = client.post("/api/v1/runner/deployments/ghost/resume", headers=auth("trader"))
    assert missing.status_code == 400
    assert "ghost" in missing.json()["detail"]


def insert_order_and_fill(engine, client_order_id: str, symbol: str = "SPX") -> None:
    """Book an account, an order and its fill with plain SQL (what the ledger commits)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trading.accounts (deployment, initial_capital, cash) "
                "VALUES ('desk', 1000000, 1000000) ON CONFLICT DO NOTHING"
            )
        )
        order_id = conn.execute(
            text(
                "INSERT INTO trading.orders (client_order_id, deployment, symbol, side, "
                "quantity, status, broker, strategy, decided_at, filled_quantity, "
                "average_fill_price) VALUES (:c, 'desk', :s, 'buy', 3, 'filled', 'paper', "
                "'sma_crossover', :t, 3, 101.5) RETURNING id"
            ),
            {"c": client_order_id, "s": symbol, "t": now},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO trading.fills (fill_id, order_id, deployment, time, symbol, side, "
                "quantity, price) VALUES (:f, :o, 'desk', :t, :s, 'buy', 3, 101.5)"
            ),
            {"f": f"fill-{client_order_id}", "o": order_id, "t": now, "s": symbol},
        )


def test_orders_and_fills_are_listed_as_booked(client, auth, engine):
    insert_order_and_fill(engine, "o-1")
    orders = client.get("/api/v1/runner/orders", headers=auth("viewer")).json()
    fills = client.get("/api/v1/runner/fills", headers=auth("viewer")).json()
    assert [(o["client_order_id"], o["quantity"]) for o in orders] == [("o-1", 3.0)]
    assert [(f["fill_id"], f["price"]) for f in fills] == [("fill-o-1", 101.5)]
