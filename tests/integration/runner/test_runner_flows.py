"""The runner's Prefect flows, run for real (Prefect's ephemeral API): a failed flow run is an
alert, written to audit.system_events with the flow, the run and the deployment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from prism.core.errors import ConfigError
from prism.core.settings import export_service_environment

pytestmark = pytest.mark.timeout(600)


def test_a_failed_trade_cycle_flow_is_an_error_alert(engine, settings):
    export_service_environment(settings)
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as STARTUP
    from prefect.settings import temporary_settings

    from runner.flows import trade_cycle

    # Prefect reads its settings when first imported, maybe before this test set the variable
    with temporary_settings({STARTUP: 300}), pytest.raises(ConfigError, match="nowhere"):
        asyncio.run(trade_cycle(deployment="nowhere"))

    with engine.connect() as conn:
        events = conn.execute(
            text(
                "SELECT severity::text, component, message, metadata FROM audit.system_events "
                "WHERE event_type = 'flow_failed'"
            )
        ).all()
    ((severity, component, message, metadata),) = events
    assert (severity, component) == ("error", "runner")
    assert message.startswith("flow trade_cycle run ") and "nowhere" in message
    assert metadata["deployment"] == "nowhere" and metadata["flow"] == "trade_cycle"
