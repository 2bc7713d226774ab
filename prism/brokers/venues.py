"""Which broker a deployment trades through, named by a short spec stored with the deployment.

- ``paper`` — :class:`~prism.brokers.paper.PaperBroker`, the simulated venue (the default);
- ``alpaca`` — :class:`~prism.brokers.alpaca.AlpacaBroker`, Alpaca's paper or live account as
  ``PRISM_ALPACA_PAPER`` says, with the keys ``PRISM_ALPACA_KEY_ID`` and
  ``PRISM_ALPACA_SECRET_KEY``;
- ``ccxt:<exchange>`` — :class:`~prism.brokers.ccxt.CcxtBroker` on any exchange ccxt knows
  (``ccxt:binance``), on its sandbox while ``PRISM_CCXT_SANDBOX`` is true, with the keys
  ``PRISM_CCXT_API_KEY`` and ``PRISM_CCXT_SECRET``.

Credentials come from the settings (environment or ``.env``) when the broker is opened; they are
never stored with the deployment or printed. The trade cycle, the kill switch and
reconciliation all open the deployment's broker here, so an order never silently goes to the
paper broker instead of the one the deployment names.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine

from prism.backtest.portfolio import AccountConfig
from prism.brokers.paper import PaperBroker
from prism.brokers.port import Broker
from prism.core.errors import ConfigError
from prism.core.settings import Settings

PAPER = "paper"
SPEC = re.compile(r"^(paper|alpaca|ccxt:[a-z0-9_]+)$")
FORMS = "paper, alpaca, or ccxt:<exchange id> (e.g. ccxt:binance)"


def check_spec(spec: str) -> str:
    """Return ``spec`` if it names a broker Prism can open, else a ConfigError listing the
    forms it may take."""
    if not SPEC.match(spec):
        raise ConfigError(f"broker {spec!r} is not one of {FORMS}")
    return spec


def open_broker(
    spec: str,
    engine: Engine,
    account: AccountConfig,
    timeframe: str,
    settings: Settings,
    account_id: str | None = None,
) -> Broker:
    """Return the broker ``spec`` names, for an account of ``account``'s costs trading
    ``timeframe`` bars; ``account_id`` is the paper broker's account (default: the
    deployment's own)."""
    kind, _, exchange = check_spec(spec).partition(":")
    if kind == PAPER:
        return PaperBroker(engine, account, timeframe, account_id=account_id)
    if kind == "alpaca":
        # Imported here: alpaca-py and its pydantic models load only for Alpaca deployments.
        from prism.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(settings)
    # Imported here: ccxt takes ~5 s to import; only exchange deployments need it.
    from prism.brokers.ccxt import CcxtBroker

    key, secret = settings.ccxt_api_key, settings.ccxt_secret
    if not settings.ccxt_sandbox and (key is None or secret is None):
        raise ConfigError(
            f"broker {spec} trades a live account and needs API keys: set PRISM_CCXT_API_KEY "
            "and PRISM_CCXT_SECRET (or PRISM_CCXT_SANDBOX=true for the exchange's sandbox)"
        )
    return CcxtBroker(
        exchange,
        api_key=key.get_secret_value() if key else None,
        secret=secret.get_secret_value() if secret else None,
        sandbox=settings.ccxt_sandbox,
    )
