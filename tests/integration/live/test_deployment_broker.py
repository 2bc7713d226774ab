"""A deployment trades through the broker it names: the trade cycle, the kill switch and
reconciliation open that broker (with credentials from the settings), never a silent paper
fallback; a broker spec that names nothing Prism can open is refused when the deployment is
saved, and by the database itself."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from pydantic import SecretStr
from sqlalchemy import text

from prism.brokers.alpaca import AlpacaBroker
from prism.brokers.ccxt import CcxtBroker
from prism.brokers.paper import PaperBroker
from prism.core.errors import ConfigError
from prism.live import cycle, deployments
from prism.live.reconcile import reconcile
from tests.integration.runner_support import CAPITAL, SYMBOLS, FixedSource, deploy


def _with_broker(engine, name: str, broker: str, account: str | None = None):
    return deployments.upsert_deployment(
        engine,
        deployments.Deployment(name, SYMBOLS, "1d", CAPITAL, broker=broker, broker_account=account),
    )


def test_a_deployment_keeps_the_broker_and_account_it_names(engine):
    _with_broker(engine, "binance-desk", "ccxt:binance", "sub-1")

    saved = deployments.get_deployment(engine, "binance-desk")

    assert (saved.broker, saved.broker_account) == ("ccxt:binance", "sub-1")
    assert deploy(engine, "plain").broker == "paper"


@pytest.mark.parametrize("spec", ["ib", "ccxt", "ccxt:", "ccxt:Binance", "paper ", "alpaca:x"])
def test_a_broker_spec_prism_cannot_open_is_refused_with_the_forms_it_may_take(engine, spec):
    with pytest.raises(ConfigError, match="paper, alpaca, or ccxt:<exchange id>"):
        _with_broker(engine, "bad", spec)


def test_the_database_refuses_a_broker_spec_written_around_prism(engine):
    deploy(engine, "raw")
    with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE config.strategies SET broker = 'ib' WHERE deployment = 'raw'"))


def test_each_spec_opens_its_own_adapter_with_credentials_from_the_settings(engine, settings):
    keyed = settings.model_copy(
        update={
            "alpaca_key_id": SecretStr("key-id"),
            "alpaca_secret_key": SecretStr("secret"),
            "ccxt_api_key": SecretStr("api-key"),
            "ccxt_secret": SecretStr("api-secret"),
        }
    )
    paper = _with_broker(engine, "p", "paper", "shared-book").open_broker(engine, keyed)
    alpaca = _with_broker(engine, "a", "alpaca").open_broker(engine, keyed)
    binance = _with_broker(engine, "b", "ccxt:binance").open_broker(engine, keyed)

    assert isinstance(paper, PaperBroker) and paper.account_id == "shared-book"
    assert isinstance(alpaca, AlpacaBroker) and alpaca.name == "alpaca-paper"
    assert isinstance(binance, CcxtBroker)
    assert binance.client.apiKey == "api-key" and binance.client.secret == "api-secret"


def test_a_live_exchange_account_without_keys_is_refused_naming_the_settings(engine, settings):
    live = settings.model_copy(update={"ccxt_sandbox": False})
    deployment = _with_broker(engine, "b", "ccxt:binance")

    with pytest.raises(ConfigError, match="PRISM_CCXT_API_KEY and PRISM_CCXT_SECRET"):
        deployment.open_broker(engine, live)


def test_the_cycle_kill_switch_and_reconciliation_use_the_deployments_broker(stocked, settings):
    bare = settings.model_copy(update={"alpaca_key_id": None, "alpaca_secret_key": None})
    _with_broker(stocked, "alpaca-desk", "alpaca")
    as_of = cycle.newest_bar(stocked, list(SYMBOLS), "1d")

    with pytest.raises(ConfigError, match="PRISM_ALPACA_KEY_ID"):
        cycle.run_cycle(stocked, bare, "alpaca-desk", as_of=as_of, source=FixedSource())
    with pytest.raises(ConfigError, match="PRISM_ALPACA_KEY_ID"):
        cycle.flatten(stocked, bare, "alpaca-desk", "test")
    with pytest.raises(ConfigError, match="PRISM_ALPACA_KEY_ID"):
        reconcile(stocked, bare, "alpaca-desk")
    with stocked.connect() as conn:
        sent = conn.execute(text("SELECT count(*) FROM trading.paper_orders")).scalar_one()
    assert sent == 0, "nothing may reach the paper broker in the Alpaca deployment's place"
