"""Alerts through apprise's real ``json://`` notifier to a webhook served on localhost, with the
de-duplication and rate-limit state read back from a real ``audit.system_events``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from prism.core.errors import ConfigError
from prism.core.events import recent_events, record_event
from prism.core.settings import Settings, public_values
from prism.live.alerts import check_alert_urls, send_alert
from tests.integration.webhook import Webhook, serve_webhook


@pytest.fixture(scope="module")
def server() -> Iterator[Webhook]:
    yield from serve_webhook()


@pytest.fixture
def hook(server: Webhook) -> Webhook:
    server.clear()
    return server


def _with(settings: Settings, *urls: str, **changes: Any) -> Settings:
    update = {"alert_urls": SecretStr(",".join(urls)) if urls else None, **changes}
    return settings.model_copy(update={"alert_backoff_seconds": 0.01, **update})


def _alert_events(engine: Engine) -> list[dict[str, Any]]:
    return [e.metadata["alert"] for e in reversed(recent_events(engine))]


def test_with_no_urls_an_alert_is_only_recorded(engine, settings):
    sent = send_alert(engine, _with(settings), "stale_data", "warning", "live", "no new bar")

    assert sent is False
    [event] = recent_events(engine)
    assert (event.event_type, event.severity, event.message) == (
        "stale_data",
        "warning",
        "no new bar",
    )
    assert event.metadata["alert"] == {"key": "", "notified": False, "suppressed": "no alert URLs"}


def test_an_alert_reaches_the_webhook_and_is_recorded_as_sent(engine, settings, hook):
    configured = _with(settings, hook.url("ok"))

    sent = send_alert(
        engine,
        configured,
        "circuit_breaker",
        "critical",
        "risk",
        "daily loss limit breached; deployment halted",
        {"deployment": "demo", "loss": 0.031},
    )

    assert sent is True
    [body] = hook.received["ok"]
    assert body["type"] == "failure"
    assert body["title"] == "[CRITICAL] Prism circuit_breaker (deployment=demo)"
    assert body["message"].startswith("daily loss limit breached; deployment halted")
    [event] = recent_events(engine)
    assert event.metadata["loss"] == 0.031
    assert event.metadata["alert"] == {
        "key": "deployment=demo",
        "notified": True,
        "suppressed": None,
        "deliveries": [{"url": "json://***", "attempts": 1, "delivered": True}],
    }


def test_a_repeated_alert_within_the_window_is_sent_once(engine, settings, hook):
    configured = _with(settings, hook.url("ok"))
    meta = {"deployment": "demo", "symbol": "SPX"}

    first = send_alert(engine, configured, "risk_breach", "warning", "risk", "too big", meta)
    again = send_alert(engine, configured, "risk_breach", "warning", "risk", "too big", meta)
    other_symbol = send_alert(
        engine, configured, "risk_breach", "warning", "risk", "too big", {**meta, "symbol": "NDX"}
    )

    assert (first, again, other_symbol) == (True, False, True)
    assert [b["title"] for b in hook.received["ok"]] == [
        "[WARNING] Prism risk_breach (deployment=demo,symbol=SPX)",
        "[WARNING] Prism risk_breach (deployment=demo,symbol=NDX)",
    ]
    assert [a["suppressed"] for a in _alert_events(engine)] == [None, "duplicate", None]


def test_the_same_alert_goes_out_again_once_the_window_has_passed(engine, settings, hook):
    configured = _with(settings, hook.url("ok"), alert_window_seconds=600)
    send_alert(engine, configured, "fill", "info", "live", "bought 3 SPX", {"deployment": "d"})
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit.system_events SET time = time - interval '11 minutes'"))

    sent = send_alert(
        engine, configured, "fill", "info", "live", "bought 3 SPX", {"deployment": "d"}
    )

    assert sent is True
    assert len(hook.received["ok"]) == 2


def test_the_window_survives_a_process_restart(engine, settings, hook):
    url = hook.url("ok")
    script = (
        "from prism.live.alerts import check_alert_urls, send_alert; "
        "from prism.core.settings import Settings; "
        "from prism.db.engine import open_database; s = Settings(); "
        "print(send_alert(open_database(s), s, 'flow_failed', 'error', 'runner', 'ingest failed',"
        " {'deployment': 'demo'}))"
    )
    environment = {**os.environ, "PRISM_ALERT_URLS": url}
    assert environment["PRISM_DATABASE_URL"] == settings.database_url.get_secret_value()
    other_process = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    )

    sent_here = send_alert(
        engine,
        _with(settings, url),
        "flow_failed",
        "error",
        "runner",
        "ingest failed",
        {"deployment": "demo"},
    )

    assert other_process.stdout.strip() == "True"
    assert sent_here is False
    assert len(hook.received["ok"]) == 1


def test_two_runners_sending_the_same_alert_at_once_notify_once(engine, settings, hook):
    configured = _with(settings, hook.url("ok"))
    start = threading.Barrier(2)
    results: list[bool] = []

    def send() -> None:
        start.wait()
        results.append(
            send_alert(
                engine, configured, "stale_data", "warning", "live", "stale", {"symbol": "X"}
            )
        )

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, True]
    assert len(hook.received["ok"]) == 1
    assert sorted(str(a["suppressed"]) for a in _alert_events(engine)) == ["None", "duplicate"]


def test_an_alert_whose_sender_died_while_sending_counts_as_sent(engine, settings, hook):
    record_event(
        engine,
        "circuit_breaker",
        "critical",
        "risk",
        "halted",
        {"deployment": "demo", "alert": {"key": "deployment=demo", "sending": True}},
    )

    sent = send_alert(
        engine,
        _with(settings, hook.url("ok")),
        "circuit_breaker",
        "critical",
        "risk",
        "halted",
        {"deployment": "demo"},
    )

    assert sent is False
    assert "ok" not in hook.received
    assert _alert_events(engine)[-1]["suppressed"] == "duplicate"


def test_a_failing_url_is_retried_then_recorded_as_failed_without_resending_the_others(
    engine, settings, hook
):
    configured = _with(settings, hook.url("ok"), hook.url("fail"), alert_attempts=3)

    sent = send_alert(engine, configured, "reconcile_mismatch", "error", "reconcile", "2% off")

    assert sent is True
    assert len(hook.received["ok"]) == 1
    assert len(hook.received["fail"]) == 3
    [outcome] = _alert_events(engine)
    assert outcome["notified"] is True
    assert outcome["deliveries"] == [
        {"url": "json://***", "attempts": 1, "delivered": True},
        {"url": "json://***", "attempts": 3, "delivered": False},
    ]


def test_an_alert_whose_every_url_fails_is_not_counted_as_sent(engine, settings, hook):
    configured = _with(settings, hook.url("fail"), alert_attempts=2)

    first = send_alert(engine, configured, "stale_data", "warning", "live", "stale")
    second = send_alert(engine, configured, "stale_data", "warning", "live", "stale")

    assert (first, second) == (False, False)
    assert len(hook.received["fail"]) == 4
    assert [a["suppressed"] for a in _alert_events(engine)] == [None, None]


def test_the_rate_limit_holds_back_warnings_but_never_a_critical_alert(engine, settings, hook):
    configured = _with(settings, hook.url("ok"), alert_max_per_window=2)

    sent = [
        send_alert(engine, configured, "risk_breach", "warning", "risk", "x", {"symbol": s})
        for s in ("A", "B", "C")
    ]
    critical = send_alert(engine, configured, "circuit_breaker", "critical", "risk", "halt")

    assert sent == [True, True, False]
    assert critical is True
    assert len(hook.received["ok"]) == 3
    assert [a["suppressed"] for a in _alert_events(engine)] == [None, None, "rate_limited", None]


def test_an_unknown_url_scheme_is_skipped_and_named_while_the_others_still_get_the_alert(
    engine, settings, hook
):
    configured = _with(settings, "nosuchservice://secret-token/chat", hook.url("ok"))

    sent = send_alert(engine, configured, "fill", "info", "live", "bought 1 SPX")

    assert sent is True
    assert len(hook.received["ok"]) == 1
    [outcome] = _alert_events(engine)
    assert outcome["invalid_urls"] == ["nosuchservice://***"]
    assert "secret-token" not in json.dumps(outcome)


def test_checking_the_urls_refuses_an_unknown_scheme_without_showing_its_token(settings):
    configured = _with(settings, "nosuchservice://secret-token/chat", "json://localhost/x")

    with pytest.raises(ConfigError, match=r"alert URL nosuchservice://\*\*\* is not one") as info:
        check_alert_urls(configured)
    assert "secret-token" not in str(info.value)
    check_alert_urls(_with(settings, "json://localhost/x"))


def test_prism_config_shows_only_the_schemes_of_alert_urls(settings):
    configured = _with(settings, "tgram://123:bot-token/456", "json://hooks.internal/x")

    shown = public_values(configured)["alert_urls"]

    assert shown == "tgram://***, json://***"


def test_prism_alerts_test_sends_one_alert_and_says_who_received_it(engine, settings, hook):
    from typer.testing import CliRunner

    from prism.cli.app import app

    result = CliRunner().invoke(
        app,
        ["alerts", "test", "--message", "hello from the CLI"],
        env={
            "PRISM_ALERT_URLS": f"{hook.url('ok')},{hook.url('fail')}",
            "PRISM_ALERT_ATTEMPTS": "1",
        },
    )

    assert result.exit_code == 0, result.output
    assert "json://***: received after 1 attempt(s)" in result.output
    assert "json://***: failed after 1 attempt(s)" in result.output
    assert [b["message"].splitlines()[0] for b in hook.received["ok"]] == ["hello from the CLI"]


def test_prism_alerts_test_without_urls_says_how_to_configure_them(engine, settings):
    from typer.testing import CliRunner

    from prism.cli.app import app

    result = CliRunner().invoke(app, ["alerts", "test"], env={"PRISM_ALERT_URLS": ""})

    assert isinstance(result.exception, ConfigError)
    assert "set PRISM_ALERT_URLS to apprise URLs" in str(result.exception)
