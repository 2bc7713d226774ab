"""Client ids given to exchanges, and the symbol inside Prism's client order ids."""

from __future__ import annotations

import re

import pytest

from prism.brokers.exchange_orders import exchange_client_id, symbol_of
from prism.core.errors import ConfigError


def test_an_exchange_client_id_is_safe_short_readable_and_stable():
    original = "a-long-deployment-name:BTC/USDT:20240102T000000"

    given = exchange_client_id(original)

    assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", given)
    assert given.startswith("a-long-deployment-name-BT")  # 25 readable + "-" + 10 of hash
    assert exchange_client_id(original) == given


def test_ids_that_differ_only_in_unsafe_characters_stay_distinct():
    assert exchange_client_id("demo:BTC/USDT:1") != exchange_client_id("demo-BTC-USDT-1")


def test_a_shorter_limit_is_honoured():
    assert len(exchange_client_id("demo:SPX:20240102T000000", 20)) == 20


def test_the_symbol_is_read_from_between_deployment_and_time():
    assert symbol_of("demo:BTC/USDT:20240102T000000") == "BTC/USDT"
    assert symbol_of("demo:BTC/USDT:USDT:20240102T000000") == "BTC/USDT:USDT"


def test_an_id_not_made_by_prism_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="not deployment:symbol:time; make order ids with"):
        symbol_of("6gCrw2kRUAF9CvJDGP16IP")
