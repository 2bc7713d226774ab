"""``prism alerts``: check the alert URLs by sending a test alert through each of them."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from sqlalchemy import text

from prism.core.errors import ConfigError
from prism.core.settings import load_settings
from prism.core.text import output_console

alerts_app = typer.Typer(
    help="Alerts through apprise to the URLs in PRISM_ALERT_URLS.", no_args_is_help=True
)
console = output_console()


@alerts_app.command("test")
def send_test_alert(
    message: Annotated[str, typer.Option(help="the text of the test alert")] = "Prism test alert",
) -> None:
    """Send one test alert to every alert URL and say which of them received it."""
    from prism.db.engine import open_database
    from prism.live.alerts import alert_urls, check_alert_urls, send_alert

    settings = load_settings()
    check_alert_urls(settings)
    if not alert_urls(settings):
        raise ConfigError(
            "no alert URLs are configured; set PRISM_ALERT_URLS to apprise URLs, comma "
            "separated (e.g. tgram://BOTTOKEN/CHATID,mailto://user:pass@example.com)"
        )
    engine = open_database(settings)
    unthrottled = settings.model_copy(update={"alert_window_seconds": 0.0})
    sent = send_alert(
        engine, unthrottled, "alert_test", "info", "cli", message, {"user": getpass.getuser()}
    )
    with engine.connect() as conn:
        outcome = conn.execute(
            text(
                "SELECT metadata->'alert' FROM audit.system_events "
                "WHERE event_type = 'alert_test' ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()
    for delivery in outcome.get("deliveries", []):
        verdict = "[green]received[/]" if delivery["delivered"] else "[red]failed[/]"
        console.print(f"{delivery['url']}: {verdict} after {delivery['attempts']} attempt(s)")
    if not sent:
        raise ConfigError(
            "no alert URL received the test alert; check each URL and that this machine can "
            "reach the service (the event is in audit.system_events)"
        )
