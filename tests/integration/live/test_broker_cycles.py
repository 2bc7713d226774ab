"""Deployments on real broker adapters, whole cycles on recorded traffic: a deployment added by
the CLI with ``--broker ccxt:binance`` (or ``alpaca``) trades through ccxt's (alpaca-py's) real
client, its HTTP replayed from recorded answers (tests/fixtures/rebuild_brokers.py): an order
accepted, one refused, one partly filled then cancelled, one whose submit timed out though the
broker had it, the cycle stopped right after sending it and run again (the order pending at the
broker is settled, not sent twice), then filled. ``prism runner reconcile`` then shows the
broker's positions and cash beside the ledger's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from prism import ledger
from prism.cli.app import app
from prism.data.bars import normalise
from prism.data.store import upsert_bars
from prism.live import cycle, steps
from tests.integration.runner_support import FixedSource, loosen_limits
from tests.recorded_orders import OrderTransport, order_transport

START = datetime(2024, 1, 2, tzinfo=UTC)
HOURS = [START + timedelta(hours=h) for h in range(3)]


class Crash(Exception):
    """The process stopping right after the broker took the cycle's orders."""


class FortyPercent(FixedSource):
    """A model holding 40% of equity in each symbol."""

    def load(self, alias: str, version: str) -> steps.LiveStrategy:
        def predict(bars: pd.DataFrame) -> pd.DataFrame:
            return bars[["time", "symbol"]].assign(weight=0.4)

        return steps.LiveStrategy("fixed", self.model, version, 1, predict)


def _store_bars(engine, closes: dict[str, float], hours: list[datetime] = HOURS) -> None:
    frames = [
        pd.DataFrame(
            {
                "time": hours,
                "symbol": symbol,
                "timeframe": "1h",
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "volume": 1_000.0,
                "source": "test",
            }
        )
        for symbol, close in closes.items()
    ]
    upsert_bars(engine, normalise(pd.concat(frames, ignore_index=True)))


def _replay_https(monkeypatch: pytest.MonkeyPatch, transport: OrderTransport) -> None:
    """Route every ``requests.Session`` the broker clients build (ccxt's, alpaca-py's) to the
    recorded answers; the clients build, sign and parse everything themselves."""
    original = requests.Session.__init__

    def mounted(self: requests.Session, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.mount("https://", transport)

    monkeypatch.setattr(requests.Session, "__init__", mounted)


def _crash_after_submit(run: Any) -> None:
    """Run ``run`` with the process stopping right after the broker took the orders."""
    real = steps.checkpoint

    def checkpoint(step: str, orders: int = 1) -> None:
        real(step, orders)
        if step == "after_submit":
            raise Crash(step)

    steps.checkpoint = checkpoint  # type: ignore[assignment]
    try:
        with pytest.raises(Crash):
            run()
    finally:
        steps.checkpoint = real  # type: ignore[assignment]


def _table(output: str) -> dict[str, list[str]]:
    """Return the rows of a printed table by their first cell."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) > 1:
            rows[cells[0]] = cells[1:]
    return rows


def _orders(engine) -> dict[str, tuple[str, Decimal]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT client_order_id, status, filled_quantity FROM trading.orders "
                "WHERE deployment = 'desk'"
            )
        ).all()
    return {cid: (status, Decimal(filled)) for cid, status, filled in rows}


def _add(cli: CliRunner, broker: str, symbols: str, lot: str = "0.001") -> None:
    added = cli.invoke(
        app,
        [
            "runner",
            "deployments",
            "add",
            "desk",
            "--symbols",
            symbols,
            "--timeframe",
            "1h",
            "--capital",
            "10000",
            "--broker",
            broker,
            "--param",
            "commission_bps=0",
            "--param",
            "slippage_bps=0",
            "--param",
            "commission_per_share=0",
            "--param",
            f"lot={lot}",
            "--param",
            "allow_gaps=true",
        ],
    )
    assert added.exit_code == 0, added.output
    assert f"broker {broker}" in added.output


def test_a_binance_deployment_trades_whole_cycles_through_ccxt(engine, settings, monkeypatch):
    monkeypatch.setenv("PRISM_CCXT_API_KEY", "testnet-key")
    monkeypatch.setenv("PRISM_CCXT_SECRET", "testnet-secret")
    keyed = settings.model_copy(
        update={
            "ccxt_api_key": SecretStr("testnet-key"),
            "ccxt_secret": SecretStr("testnet-secret"),
        }
    )
    transport = order_transport("ccxt_broker/binance_cycles.json")
    _replay_https(monkeypatch, transport)
    _store_bars(engine, {"BTC/USDT": 40_000.0, "ETH/USDT": 2_000.0})
    loosen_limits(engine, "broker cycle test")
    cli = CliRunner()
    _add(cli, "ccxt:binance", "BTC/USDT,ETH/USDT")
    source = FortyPercent()

    first = cycle.run_cycle(engine, keyed, "desk", as_of=HOURS[0], source=source)
    assert (first.outcome, first.orders) == ("traded", 2)
    assert _orders(engine) == {
        "desk:BTC/USDT:20240102T000000": ("sent", Decimal(0)),
        "desk:ETH/USDT:20240102T000000": ("rejected", Decimal(0)),
    }

    _crash_after_submit(
        lambda: cycle.run_cycle(engine, keyed, "desk", as_of=HOURS[1], source=source)
    )
    assert _orders(engine)["desk:BTC/USDT:20240102T010000"] == ("pending", Decimal(0))
    again = cycle.run_cycle(engine, keyed, "desk", as_of=HOURS[1], source=source)
    assert again.outcome == "traded"
    third = cycle.run_cycle(engine, keyed, "desk", as_of=HOURS[2], source=source)
    assert third.outcome == "traded"

    assert _orders(engine) == {
        "desk:BTC/USDT:20240102T000000": ("cancelled", Decimal("0.04")),
        "desk:ETH/USDT:20240102T000000": ("rejected", Decimal(0)),
        "desk:BTC/USDT:20240102T010000": ("filled", Decimal("0.059")),
        "desk:ETH/USDT:20240102T010000": ("rejected", Decimal(0)),
        "desk:ETH/USDT:20240102T020000": ("rejected", Decimal(0)),
    }
    posts = [c.params["newClientOrderId"] for c in transport.made("POST", "/api/v3/order")]
    btc = [p for p in posts if "BTC" in p]
    assert len(btc) == len(set(btc)) == 2, "each accepted order reaches the exchange once"
    with engine.connect() as conn:
        assert ledger.holdings(conn, "desk") == {"BTC/USDT": Decimal("0.099")}
        # 10,000 - 0.04 x 40,010 - 0.059 x 40,020 - 0.24 fee
        assert ledger.cash(conn, "desk") == Decimal("6038.18")

    reconciled = cli.invoke(app, ["runner", "reconcile", "desk"])
    assert reconciled.exit_code == 0, reconciled.output
    assert "positions agree with the broker" in reconciled.output
    assert "broker (ccxt:binance)" in reconciled.output
    sides = _table(reconciled.output)
    assert sides["cash"] == ["6038.18", "6038.18"]
    assert sides["BTC/USDT"] == ["0.099", "0.099"]
    assert transport.made("GET", "/api/v3/account"), "the broker's own books were read"


def test_an_alpaca_deployment_trades_whole_cycles_through_alpaca_py(engine, settings, monkeypatch):
    monkeypatch.setenv("PRISM_ALPACA_KEY_ID", "paper-key")
    monkeypatch.setenv("PRISM_ALPACA_SECRET_KEY", "paper-secret")
    keyed = settings.model_copy(
        update={
            "alpaca_key_id": SecretStr("paper-key"),
            "alpaca_secret_key": SecretStr("paper-secret"),
            "alpaca_paper": True,
        }
    )
    transport = order_transport("alpaca/paper_cycles.json")
    _replay_https(monkeypatch, transport)
    hours = [START.replace(hour=15) + timedelta(hours=h) for h in range(3)]
    _store_bars(engine, {"AAPL": 200.0, "MSFT": 400.0}, hours)
    loosen_limits(engine, "broker cycle test")
    cli = CliRunner()
    _add(cli, "alpaca", "AAPL,MSFT", lot="1")
    source = FortyPercent()

    first = cycle.run_cycle(engine, keyed, "desk", as_of=hours[0], source=source)
    assert (first.outcome, first.orders) == ("traded", 2)
    _crash_after_submit(
        lambda: cycle.run_cycle(engine, keyed, "desk", as_of=hours[1], source=source)
    )
    assert _orders(engine)["desk:AAPL:20240102T160000"] == ("pending", Decimal(0))
    assert cycle.run_cycle(engine, keyed, "desk", as_of=hours[1], source=source).outcome == (
        "traded"
    )
    assert cycle.run_cycle(engine, keyed, "desk", as_of=hours[2], source=source).outcome == (
        "traded"
    )

    assert _orders(engine) == {
        "desk:AAPL:20240102T150000": ("cancelled", Decimal(8)),
        "desk:MSFT:20240102T150000": ("rejected", Decimal(0)),
        "desk:AAPL:20240102T160000": ("filled", Decimal(11)),
        "desk:MSFT:20240102T160000": ("rejected", Decimal(0)),
        "desk:MSFT:20240102T170000": ("rejected", Decimal(0)),
    }
    posts = [c.params["client_order_id"] for c in transport.made("POST", "/v2/orders")]
    aapl = [p for p in posts if "AAPL" in p]
    assert len(aapl) == len(set(aapl)) == 2, "each accepted order reaches Alpaca once"
    with engine.connect() as conn:
        assert ledger.holdings(conn, "desk") == {"AAPL": Decimal(19)}
        assert ledger.cash(conn, "desk") == Decimal(10_000) - 8 * Decimal("200.5") - 11 * 201

    reconciled = cli.invoke(app, ["runner", "reconcile", "desk"])
    assert reconciled.exit_code == 0, reconciled.output
    assert "broker (alpaca-paper)" in reconciled.output
    sides = _table(reconciled.output)
    assert sides["cash"] == ["6185", "6185"]
    assert sides["AAPL"] == ["19", "19"]
