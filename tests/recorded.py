"""Replay recorded HTTP responses through a real ``requests.Session``.

A cassette (``tests/fixtures/**/*.json``) is a list of interactions, each a request (method and
URL with its query) and the response the service gave (status, headers, body). Mounted on a
session, :class:`RecordedTransport` answers each request with the interaction whose method,
host, path and query parameters match, so the client under test (yfinance, ccxt) runs all of its
own request building and response parsing; only the socket is replaced. Requests it cannot match
fail the test, and every request made is kept in ``calls`` for assertions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Call:
    """One request the client made: method, URL without query, and query parameters."""

    method: str
    url: str
    params: dict[str, str]


def _split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", dict(parse_qsl(parts.query))


@dataclass
class RecordedTransport(BaseAdapter):
    """A ``requests`` transport adapter that replays cassette interactions.

    ``ignore`` lists query parameters that vary per session (Yahoo's ``crumb``) and take no
    part in matching; ``fail`` maps a URL path to an exception to raise instead of answering.
    """

    interactions: list[dict[str, Any]]
    ignore: tuple[str, ...] = ()
    fail: Mapping[str, Exception] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Answer ``request`` from the cassette, or raise the failure configured for its path."""
        assert request.url is not None and request.method is not None
        url, params = _split(request.url)
        self.calls.append(Call(request.method, url, params))
        for path, error in self.fail.items():
            if urlsplit(url).path == path:
                raise error
        return self._response(request, self._match(request.method, url, params))

    def _match(self, method: str, url: str, params: dict[str, str]) -> dict[str, Any]:
        wanted = {k: v for k, v in params.items() if k not in self.ignore}
        for interaction in self.interactions:
            recorded_url, recorded = _split(interaction["request"]["url"])
            recorded = {k: v for k, v in recorded.items() if k not in self.ignore}
            if (interaction["request"]["method"], recorded_url, recorded) == (method, url, wanted):
                return interaction["response"]
        raise AssertionError(f"no recorded response for {method} {url} {wanted}")

    @staticmethod
    def _response(request: requests.PreparedRequest, recorded: dict[str, Any]) -> requests.Response:
        body = recorded["body"]
        response = requests.Response()
        response.status_code = recorded["status"]
        response.reason = recorded.get("reason", "")
        response.headers.update(recorded.get("headers", {}))
        response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release."""


def cassette(name: str) -> list[dict[str, Any]]:
    """Return the interactions of ``tests/fixtures/<name>``."""
    loaded = json.loads((FIXTURES / name).read_text())
    return list(loaded["interactions"])


def recorded_session(transport: RecordedTransport) -> requests.Session:
    """Return a real ``requests.Session`` whose every HTTP(S) request goes to ``transport``."""
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session
