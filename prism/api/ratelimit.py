"""Requests per minute per caller: a token bucket per key, user or (for logins) client address.

The bucket holds ``rate`` tokens and refills at ``rate`` per minute; a request takes one. When
it is empty the caller is told how many whole seconds until the next token (``Retry-After``).
Buckets live in this process: with several API processes each enforces its own share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by caller."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, caller: str) -> int:
        """Take one token for ``caller``: return 0 when allowed, else the seconds to wait."""
        now = self.clock()
        with self.lock:
            tokens, seen = self.buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - seen) * self.refill)
            if tokens >= 1.0:
                self.buckets[caller] = (tokens - 1.0, now)
                return 0
            self.buckets[caller] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.refill))
