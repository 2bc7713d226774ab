"""The Alpaca broker through alpaca-py's real ``TradingClient`` (paper endpoint), its HTTP
replayed from recorded responses (see tests/fixtures/rebuild_brokers.py), and its fills booked
by the real ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient
from pydantic import SecretStr
from sqlalchemy import text

from prism import ledger
from prism.brokers.alpaca import AlpacaBroker, alpaca_state
from prism.brokers.exchange_orders import OrderRejected
from prism.core.errors import ConfigError, TransientError
from prism.ledger import OrderRow
from prism.live.steps import client_order_id, fill_open_orders
from tests.recorded_orders import OrderTransport, order_transport

JAN_2 = datetime(2024, 1, 2, tzinfo=UTC)
LATER = datetime(2024, 1, 3, tzinfo=UTC)


def _order(symbol: str, hour: int, quantity: str) -> OrderRow:
    decided = JAN_2.replace(hour=hour)
    return OrderRow(
        client_order_id=client_order_id("demo", symbol, decided),
        deployment="demo",
        symbol=symbol,
        side="buy",
        quantity=Decimal(quantity),
        strategy="sma_crossover",
        model_name=None,
        model_version=None,
        decided_at=decided,
        broker="alpaca-paper",
    )


def _broker() -> tuple[AlpacaBroker, OrderTransport]:
    transport = order_transport("alpaca/paper.json")
    client = TradingClient("paper-key", "paper-secret", paper=True)
    client._session.mount("https://", transport)  # alpaca-py's own requests.Session
    return AlpacaBroker(client, paper=True), transport


def test_a_market_order_goes_to_the_paper_endpoint_with_prisms_client_id():
    broker, transport = _broker()
    order = _order("AAPL", 15, "10")

    broker_id = broker.submit(order)

    assert broker_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    [sent] = transport.made("POST", "/v2/orders")
    assert sent.url == "https://paper-api.alpaca.markets/v2/orders"
    assert sent.params["client_order_id"] == order.client_order_id == "demo:AAPL:20240102T150000"
    assert (sent.params["type"], sent.params["time_in_force"], sent.params["qty"]) == (
        "market",
        "day",
        10.0,
    )
    assert broker.name == "alpaca-paper"


def test_a_filled_order_is_looked_up_with_only_its_own_fill_activities():
    broker, _ = _broker()

    known = broker.lookup("demo:AAPL:20240102T150000")

    assert known is not None
    assert (known.status, known.filled_quantity, known.average_price) == (
        "filled",
        Decimal("10"),
        Decimal("185.64"),
    )
    [fill] = known.fills
    assert (
        fill.fill_id
        == "demo:AAPL:20240102T150000/20240102150001900::0c8f5a3e-8b2b-4000-9955-d36e7db0df74"
    )
    assert (fill.quantity, fill.price, fill.commission) == (Decimal("10"), Decimal("185.64"), 0)
    assert fill.time == datetime(2024, 1, 2, 15, 0, 1, 900000, tzinfo=UTC)


def test_a_limit_order_is_placed_at_its_price():
    broker, transport = _broker()

    broker.submit(_order("AAPL", 16, "10"), limit_price=Decimal("185.5"))

    [sent] = transport.made("POST", "/v2/orders")
    assert (sent.params["type"], sent.params["limit_price"]) == ("limit", 185.5)


def test_insufficient_buying_power_403_is_a_rejection():
    broker, transport = _broker()

    with pytest.raises(OrderRejected, match="insufficient buying power"):
        broker.submit(_order("TSLA", 15, "1000"))
    assert len(transport.made("POST", "/v2/orders")) == 1


def test_an_unknown_asset_422_is_a_rejection():
    broker, _ = _broker()

    with pytest.raises(OrderRejected, match='asset "XYZQ" not found'):
        broker.submit(_order("XYZQ", 15, "1"))


def test_a_client_id_alpaca_already_has_returns_that_order_instead_of_a_second_one():
    broker, transport = _broker()

    assert broker.submit(_order("AAPL", 17, "10")) == "81e69015-8549-4bfd-b9c3-01e75843f47d"
    assert len(transport.made("POST", "/v2/orders")) == 1


def test_a_timed_out_order_alpaca_received_is_found_by_client_id_not_sent_twice():
    broker, transport = _broker()

    assert broker.submit(_order("AAPL", 18, "10")) == "91e69015-8549-4bfd-b9c3-01e75843f47d"
    assert len(transport.made("POST", "/v2/orders")) == 1
    [lookup] = transport.made("GET", "/v2/orders:by_client_order_id")
    assert lookup.params == {"client_order_id": "demo:AAPL:20240102T180000"}


def test_a_timed_out_order_alpaca_never_got_is_transient():
    broker, _ = _broker()

    with pytest.raises(TransientError, match="does not have it"):
        broker.submit(_order("AAPL", 19, "10"))


def test_refused_keys_are_a_config_error_naming_the_settings():
    broker, _ = _broker()

    with pytest.raises(ConfigError, match="check PRISM_ALPACA_KEY_ID and PRISM_ALPACA_SECRET_KEY"):
        broker.lookup("demo:MSFT:20240102T150000")


def test_a_server_error_is_transient():
    broker, _ = _broker()

    with pytest.raises(TransientError, match="HTTP 500: internal server error occurred"):
        broker.lookup("demo:AMZN:20240102T150000")


def test_positions_are_signed_quantities_per_symbol():
    broker, _ = _broker()

    assert broker.positions() == {"AAPL": Decimal("20"), "TSLA": Decimal("-3")}


def test_a_partial_then_full_fill_is_booked_once_each_by_the_ledger(engine):
    broker, _ = _broker()
    order = _order("AAPL", 16, "10")
    ledger.ensure_account(engine, "demo", Decimal("10000"))
    with engine.begin() as conn:
        ledger.insert_order(conn, order, broker.submit(order, limit_price=Decimal("185.5")))

    booked = [fill_open_orders(engine, broker, "demo", LATER) for _ in range(3)]

    assert booked == [1, 1, 0]
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, filled_quantity, average_fill_price FROM trading.orders")
        ).one()
        cash = ledger.cash(conn, "demo")
        held = ledger.holdings(conn, "demo")
    # 4 at 185.50 and 6 at 185.45: 742.00 + 1,112.70 = 1,854.70, average 185.47
    assert (row.status, Decimal(row.filled_quantity), Decimal(row.average_fill_price)) == (
        "filled",
        Decimal("10"),
        Decimal("185.47"),
    )
    assert cash == Decimal("10000") - Decimal("1854.70")
    assert held == {"AAPL": Decimal("10")}


@pytest.mark.parametrize(
    ("status", "filled", "state"),
    [
        ("new", "0", "sent"),
        ("accepted", "0", "sent"),
        ("pending_new", "0", "sent"),
        ("new", "2", "partial"),
        ("partially_filled", "2", "partial"),
        ("filled", "10", "filled"),
        ("canceled", "2", "cancelled"),
        ("expired", "0", "cancelled"),
        ("done_for_day", "0", "cancelled"),
        ("rejected", "0", "rejected"),
    ],
)
def test_alpaca_statuses_map_onto_the_order_states(status, filled, state):
    assert alpaca_state(status, Decimal(filled)) == state


def test_missing_keys_are_a_config_error(settings):
    with pytest.raises(ConfigError, match="set PRISM_ALPACA_KEY_ID and PRISM_ALPACA_SECRET_KEY"):
        AlpacaBroker.from_settings(settings.model_copy(update={"alpaca_key_id": None}))
    configured = settings.model_copy(
        update={
            "alpaca_key_id": SecretStr("k"),
            "alpaca_secret_key": SecretStr("s"),
            "alpaca_paper": False,
        }
    )
    assert AlpacaBroker.from_settings(configured).name == "alpaca"
