"""The ccxt broker on Binance's spot testnet, through ccxt's real client replaying recorded
HTTP (see tests/fixtures/rebuild_brokers.py), and its fills booked by the real ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from prism import ledger
from prism.brokers.ccxt import CcxtBroker, ccxt_state
from prism.brokers.exchange_orders import OrderRejected, exchange_client_id
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
        broker="ccxt:binance",
    )


def _broker() -> tuple[CcxtBroker, OrderTransport]:
    from tests.recorded import recorded_session

    transport = order_transport("ccxt_broker/binance_testnet.json")
    broker = CcxtBroker(
        "binance",
        api_key="testnet-key",
        secret="testnet-secret",
        config={
            "session": recorded_session(transport),
            "enableRateLimit": False,
            "options": {"fetchMarkets": ["spot"]},
        },
    )
    return broker, transport


def test_the_broker_trades_on_the_sandbox_with_the_client_id_of_the_order():
    broker, transport = _broker()
    order = _order("BTC/USDT", 0, "0.01")

    broker_id = broker.submit(order)

    assert broker_id == "1001"
    [sent] = transport.made("POST", "/api/v3/order")
    assert sent.url == "https://testnet.binance.vision/api/v3/order"
    assert sent.params["newClientOrderId"] == exchange_client_id(order.client_order_id)
    assert (sent.params["type"], sent.params["side"], sent.params["quantity"]) == (
        "MARKET",
        "BUY",
        "0.01",
    )
    assert all("testnet.binance.vision" in call.url for call in transport.calls)


def test_a_filled_market_order_is_looked_up_with_its_trade_as_the_fill():
    broker, _ = _broker()
    order = _order("BTC/USDT", 0, "0.01")

    known = broker.lookup(order.client_order_id)

    assert known is not None
    assert (known.broker_order_id, known.status) == ("1001", "filled")
    assert known.filled_quantity == Decimal("0.01")
    [fill] = known.fills
    assert fill.fill_id == f"{order.client_order_id}/5001"
    assert (fill.quantity, fill.price) == (Decimal("0.01"), Decimal("42500.1"))
    assert fill.commission == Decimal("0.425001")  # 0.00001 BTC at 42,500.10 USDT
    assert fill.time == datetime(2024, 1, 2, 0, 0, 0, 5000, tzinfo=UTC)


def test_a_limit_order_is_placed_at_its_price():
    broker, transport = _broker()

    assert broker.submit(_order("BTC/USDT", 1, "0.01"), limit_price=Decimal("42000")) == "1002"
    [sent] = transport.made("POST", "/api/v3/order")
    assert (sent.params["type"], sent.params["price"], sent.params["timeInForce"]) == (
        "LIMIT",
        "42000",
        "GTC",
    )


def test_an_order_without_enough_balance_is_rejected_with_the_exchanges_reason():
    broker, transport = _broker()
    order = _order("ETH/USDT", 0, "50")

    with pytest.raises(OrderRejected, match="insufficient balance") as info:
        broker.submit(order)

    assert info.value.client_order_id == order.client_order_id
    assert len(transport.made("POST", "/api/v3/order")) == 1


def test_a_timed_out_order_the_exchange_received_is_found_by_client_id_not_sent_twice():
    broker, transport = _broker()

    broker_id = broker.submit(_order("BTC/USDT", 2, "0.01"))

    assert broker_id == "1004"
    assert len(transport.made("POST", "/api/v3/order")) == 1
    [lookup] = transport.made("GET", "/api/v3/order")
    assert lookup.params["origClientOrderId"] == exchange_client_id(
        client_order_id("demo", "BTC/USDT", JAN_2.replace(hour=2))
    )


def test_a_resubmitted_order_returns_the_id_the_exchange_already_has():
    broker, transport = _broker()

    assert broker.submit(_order("BTC/USDT", 3, "0.01")) == "1005"
    assert len(transport.made("POST", "/api/v3/order")) == 1


def test_a_timed_out_order_the_exchange_never_got_is_transient():
    broker, _ = _broker()

    with pytest.raises(TransientError, match="does not have it") as info:
        broker.submit(_order("BTC/USDT", 4, "0.01"))
    import ccxt

    assert isinstance(info.value.__cause__.__cause__, ccxt.RequestTimeout)


def test_an_order_the_exchange_never_received_looks_up_as_none():
    broker, _ = _broker()

    assert broker.lookup(client_order_id("demo", "BTC/USDT", JAN_2.replace(hour=4))) is None


def test_positions_are_the_non_quote_balances():
    broker, _ = _broker()

    assert broker.positions() == {"BTC/USDT": Decimal("0.02"), "ETH/USDT": Decimal("0.4")}


def test_a_partial_then_full_fill_is_booked_once_each_by_the_ledger(engine):
    broker, _ = _broker()
    order = _order("BTC/USDT", 1, "0.01")
    ledger.ensure_account(engine, "demo", Decimal("10000"))
    with engine.begin() as conn:
        ledger.insert_order(conn, order, broker.submit(order, limit_price=Decimal("42000")))

    first = fill_open_orders(engine, broker, "demo", LATER)
    with engine.connect() as conn:
        after_first = ledger.open_orders(conn, "demo")
    second = fill_open_orders(engine, broker, "demo", LATER)
    third = fill_open_orders(engine, broker, "demo", LATER)

    assert (first, second, third) == (1, 1, 0)
    assert [o.quantity for o in after_first] == [Decimal("0.006")]
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, filled_quantity, average_fill_price, commission FROM trading.orders"
            )
        ).one()
        held = ledger.holdings(conn, "demo")
        cash = ledger.cash(conn, "demo")
    # 0.004 at 42,000 and 0.006 at 41,990: average 41,994; fees 0.000004 and 0.000006 BTC
    assert row.status == "filled"
    assert Decimal(row.filled_quantity) == Decimal("0.01")
    assert Decimal(row.average_fill_price) == Decimal("41994")
    assert Decimal(row.commission) == Decimal("0.168") + Decimal("0.25194")
    assert held == {"BTC/USDT": Decimal("0.01")}
    # cash moves by price x quantity + fee, rounded to 0.0001: 168.168 then 252.19194
    assert cash == Decimal("10000") - Decimal("168.168") - Decimal("252.1919")


def test_a_cancelled_partly_filled_order_books_its_fill_and_cancels_the_rest(engine):
    broker, _ = _broker()
    order = _order("ETH/USDT", 1, "1")
    ledger.ensure_account(engine, "demo", Decimal("10000"))
    with engine.begin() as conn:
        ledger.insert_order(conn, order, "1006")

    booked = fill_open_orders(engine, broker, "demo", LATER)

    assert booked == 1
    with engine.connect() as conn:
        status, filled, commission = conn.execute(
            text("SELECT status, filled_quantity, commission FROM trading.orders")
        ).one()
    assert (status, Decimal(filled), Decimal(commission)) == (
        "cancelled",
        Decimal("0.4"),
        Decimal("0.88"),
    )


def test_fills_after_until_wait_for_a_later_cycle():
    broker, _ = _broker()
    order = _order("BTC/USDT", 0, "0.01")

    assert broker.executions([order], Decimal(0), JAN_2) == []
    [execution] = broker.executions([order], Decimal(0), LATER)
    assert execution.fill is not None and not execution.rest_cancelled


@pytest.mark.parametrize(
    ("status", "filled", "state"),
    [
        ("open", 0.0, "sent"),
        ("open", 0.4, "partial"),
        (None, None, "sent"),
        ("closed", 1.0, "filled"),
        ("canceled", 0.4, "cancelled"),
        ("expired", 0.0, "cancelled"),
        ("rejected", 0.0, "rejected"),
    ],
)
def test_ccxt_statuses_map_onto_the_order_states(status, filled, state):
    assert ccxt_state(status, filled) == state


def test_an_exchange_without_a_sandbox_is_refused_unless_sandbox_is_off():
    with pytest.raises(ConfigError, match="kraken has no sandbox in ccxt; set PRISM_CCXT_SANDBOX"):
        CcxtBroker("kraken")
    assert CcxtBroker("kraken", sandbox=False).name == "ccxt:kraken"


def test_an_unknown_exchange_is_named_with_near_matches():
    with pytest.raises(ConfigError, match="ccxt has no exchange 'binanse'; did you mean binance"):
        CcxtBroker("binanse")
