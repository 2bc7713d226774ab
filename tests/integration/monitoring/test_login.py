"""The dashboard's password login through its read-only login on the real database: failures
are recorded in audit.system_events and a client over its limit is refused for the window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from prism.monitoring import access, login


@pytest.fixture
def reader(engine: Engine, settings) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """The dashboard's read-only engine on the emptied test database."""
    reader = access.reader_engine(settings)
    yield reader
    reader.dispose()


@pytest.fixture
def guarded(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(
        update={
            "dashboard_password": SecretStr("open sesame"),
            "dashboard_login_attempts": 3,
            "dashboard_login_window_seconds": 60.0,
        }
    )


def _failures(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT severity::text, metadata->>'client', metadata->>'detail' "
                "FROM audit.system_events WHERE event_type = 'dashboard_login_failed' ORDER BY id"
            )
        ).all()
    return [tuple(row) for row in rows]


def test_a_wrong_password_is_refused_and_recorded_as_a_warning(engine, reader, guarded):
    outcome = login.attempt_login(reader, guarded, "10.0.0.7", "guess")

    assert not outcome.accepted and outcome.message.startswith("Wrong password")
    assert _failures(engine) == [("warning", "10.0.0.7", "wrong password")]


def test_a_client_over_its_limit_is_refused_even_with_the_right_password_until_the_window_ends(
    engine, reader, guarded
):
    """The events carry the database's own time, so the window is judged around now."""
    for _ in range(3):
        login.attempt_login(reader, guarded, "10.0.0.7", "guess")
    now = datetime.now(UTC)

    blocked = login.attempt_login(
        reader, guarded, "10.0.0.7", "open sesame", now + timedelta(seconds=5)
    )
    other = login.attempt_login(
        reader, guarded, "10.0.0.8", "open sesame", now + timedelta(seconds=5)
    )
    later = login.attempt_login(
        reader, guarded, "10.0.0.7", "open sesame", now + timedelta(seconds=70)
    )

    assert not blocked.accepted and "Too many failed logins" in blocked.message
    assert other.accepted and later.accepted
    assert [client for _, client, _ in _failures(engine)] == ["10.0.0.7"] * 4
    assert _failures(engine)[-1][2] == "rate limited"


def test_recording_failures_gives_the_reader_no_other_write(reader):
    with pytest.raises(ProgrammingError, match="permission denied"), reader.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit.system_events (event_type, severity, component, message) "
                "VALUES ('forged', 'info', 'dashboard', 'x')"
            )
        )
