"""The runner's Prefect flows, run for real (Prefect's ephemeral API): a failed flow run is an
alert, written to audit.system_events with the flow, the run and the deployment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from prism.config import export_service_environment
from prism.errors import ConfigError

pytestmark = pytest.mark.timeout(600)


def test_a_failed_trade_cycle_flow_is_an_error_alert(engine, settings):
    export_service_environment(settings)
    from runner.flows import trade_cycle

    with pytest.raises(ConfigError, match="nowhere"):
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
