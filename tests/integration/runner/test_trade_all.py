"""The scheduled ``trade_all`` flow, run for real (Prefect's ephemeral API): each deployment is
its own task run, so a deployment that cannot trade (its model alias points nowhere) fails its
task and raises an alert while the healthy deployment beside it trades. The alerts are only
queued; the scheduled ``deliver_alerts`` flow then sends each once to a local webhook."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from prism.core.settings import export_service_environment
from prism.live import deployments
from prism.registry import promotion
from prism.strategies import SmaCrossover
from tests.integration.runner_support import (
    CAPITAL,
    LENIENT,
    SYMBOLS,
    loosen_limits,
    research_run,
    use_mlflow_store,
)
from tests.integration.webhook import serve_webhook

pytestmark = pytest.mark.timeout(600)


def test_one_failing_deployment_does_not_stop_the_others_in_trade_all(
    stocked, settings, bundled_bars, tmp_path, monkeypatch
):
    use_mlflow_store(monkeypatch, tmp_path)
    monkeypatch.setenv("PRISM_RUNNER_STALE_INTERVALS", "100000")
    store = settings.model_copy(update={"mlruns_dir": tmp_path})
    run_id = research_run(store, SmaCrossover(fast=5, slow=20, allow_short=True), bundled_bars)
    assert promotion.promote(store, run_id, LENIENT, "alice", engine=stocked).promoted
    loosen_limits(stocked, "trade_all test")
    for name, alias in (("broken", "nowhere"), ("healthy", "champion")):
        deployments.upsert_deployment(
            stocked, deployments.Deployment(name, SYMBOLS, "1d", CAPITAL, model_alias=alias)
        )
    export_service_environment(store)
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as STARTUP
    from prefect.settings import temporary_settings

    from runner.flows import DeploymentsFailed, deliver_alerts, trade_all

    hook = serve_webhook()
    webhook = next(hook)
    with temporary_settings({STARTUP: 300}):
        monkeypatch.setenv("PRISM_ALERT_URLS", webhook.url("ok"))
        with pytest.raises(DeploymentsFailed, match="broken"):
            asyncio.run(trade_all())
        assert webhook.received == {}  # queued, not sent, by the trading flow
        delivered = asyncio.run(deliver_alerts())
        again = asyncio.run(deliver_alerts())
    hook.close()

    with stocked.connect() as conn:
        orders = dict(
            conn.execute(
                text("SELECT deployment, count(*) FROM trading.orders GROUP BY deployment")
            ).all()
        )
        alerts = conn.execute(
            text(
                "SELECT severity::text, metadata->>'deployment' FROM audit.system_events "
                "WHERE event_type = 'task_failed'"
            )
        ).all()
    assert orders.get("healthy", 0) > 0, "the healthy deployment must have traded"
    assert "broken" not in orders
    assert alerts == [("error", "broken")]
    assert delivered == {"delivered": 2} and again == {}  # task_failed and trade_all's flow_failed
    titles = sorted(body["title"] for body in webhook.received["ok"])
    assert titles == ["[ERROR] Prism flow_failed", "[ERROR] Prism task_failed (deployment=broken)"]
    assert len(webhook.processed("ok")) == 2
