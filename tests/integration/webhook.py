"""A real HTTP webhook receiver on localhost for the alert tests (apprise's ``json://`` posts to
it over real HTTP): ``/ok`` answers 200, ``/fail`` 500, ``/slow`` 200 after ``delay`` seconds.
It keeps every body and every ``Idempotency-Key`` header per path, and ``processed`` holds the
keys a receiver that de-duplicates by key would act on (each once)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prism.live.alerts import DELIVERY_KEY_HEADER


@dataclass
class Webhook:
    """The receiver's state; ``before_answer(path)`` runs after a request is recorded and
    before it is answered (a test uses it to kill the sender at that moment)."""

    port: int
    delay: float = 2.0
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, list[str | None]] = field(default_factory=dict)
    before_answer: Callable[[str], None] | None = None

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def processed(self, path: str) -> list[str | None]:
        """The distinct delivery keys received at ``path``, in order of first arrival."""
        return list(dict.fromkeys(self.keys.get(path, [])))

    def clear(self) -> None:
        self.received.clear()
        self.keys.clear()
        self.before_answer = None


def serve_webhook() -> Iterator[Webhook]:
    """Serve a :class:`Webhook` on a free port until the generator is closed."""
    hook = Webhook(0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path.split("?", 1)[0].strip("/")
            hook.received.setdefault(path, []).append(body)
            hook.keys.setdefault(path, []).append(self.headers.get(DELIVERY_KEY_HEADER))
            if hook.before_answer is not None:
                hook.before_answer(path)
            if path == "slow":
                time.sleep(hook.delay)
            self.send_response(500 if path == "fail" else 200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = httpd.server_port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield hook
    httpd.shutdown()
