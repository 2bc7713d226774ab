"""Revoked credentials, so that revoking an API key or disabling a user also ends the tokens
already issued for it, not only the next login.

Tokens are verified by signature alone (no database read per request). Each API process keeps
a snapshot of the subjects whose credential ended (revoked keys with the time of revocation,
disabled users) and reads it again at most every :data:`REFRESH_SECONDS`, so a revocation
reaches every process within seconds. A token is refused when its subject's credential ended
after the token was issued; a disabled user's tokens are all refused.
"""

from __future__ import annotations

import math
import threading
import time

from sqlalchemy import Engine, text

from prism.api.security import Claims

REFRESH_SECONDS = 5.0
"""How stale a process's view of revocations may be."""

_ENDED = """
SELECT 'key:' || key_id AS subject, extract(epoch FROM revoked_at) AS ended
FROM config.api_keys WHERE revoked_at IS NOT NULL
UNION ALL
SELECT username, NULL FROM config.api_users WHERE disabled
"""


class Revocations:
    """A process's cached view of ended credentials, read through ``engine`` (which must read
    ``config.api_keys`` and ``config.api_users``: the owner's login)."""

    def __init__(self, engine: Engine, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._ended: dict[str, float] = {}
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def refusal(self, claims: Claims) -> str | None:
        """Return why the token of ``claims`` is no longer honoured, or None if it is."""
        ended = self._snapshot().get(claims.subject)
        if ended is None or claims.issued >= ended:
            return None
        if claims.subject.startswith("key:"):
            return "the API key this token was issued for has been revoked"
        return "this user has been disabled"

    def _snapshot(self) -> dict[str, float]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                with self.engine.connect() as conn:
                    rows = conn.execute(text(_ENDED)).all()
                self._ended = {
                    r.subject: math.inf if r.ended is None else float(r.ended) for r in rows
                }
                self._read_at = time.monotonic()
            return self._ended
