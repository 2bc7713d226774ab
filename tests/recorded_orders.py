"""Replay recorded order traffic (signed requests, changing order states, timeouts) through a
real ``requests.Session``, for the network broker adapters' tests.

It extends :class:`tests.recorded.RecordedTransport` in three ways order APIs need:

- a request's form or JSON body takes part in matching, beside its query (recorded as
  ``"body"``), and the parameters that change with every signed request (``timestamp``,
  ``signature``, ``recvWindow``) take no part;
- an interaction marked ``"once": true`` answers one request only, so the same request can see
  an order first partly filled, then filled;
- an interaction may hold ``"error": "ReadTimeout"`` (or ``"ConnectionError"``) instead of a
  response: the request was sent and no answer came back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import requests

from tests.recorded import Call, RecordedTransport, _split, cassette

SIGNING = ("timestamp", "signature", "recvWindow")
ERRORS: dict[str, type[Exception]] = {
    "ReadTimeout": requests.exceptions.ReadTimeout,
    "ConnectionError": requests.exceptions.ConnectionError,
}


def _body(request: requests.PreparedRequest) -> dict[str, Any]:
    body = request.body
    if not body:
        return {}
    text = body.decode() if isinstance(body, bytes) else str(body)
    if text.lstrip().startswith("{"):
        return dict(json.loads(text))
    return dict(parse_qsl(text))


@dataclass
class OrderTransport(RecordedTransport):
    """A transport replaying order cassettes; every request made is kept in ``calls`` with its
    body parameters merged into ``params``."""

    ignore: tuple[str, ...] = SIGNING
    used: set[int] = field(default_factory=set)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Answer ``request`` from the first unused matching interaction."""
        assert request.url is not None and request.method is not None
        url, query = _split(request.url)
        params: dict[str, Any] = {**query, **_body(request)}
        self.calls.append(Call(request.method, url, params))
        wanted = {k: v for k, v in params.items() if k not in self.ignore}
        for index, interaction in enumerate(self.interactions):
            if index in self.used or not self._matches(interaction, request.method, url, wanted):
                continue
            if interaction.get("once"):
                self.used.add(index)
            if "error" in interaction:
                raise ERRORS[interaction["error"]](f"recorded {interaction['error']}")
            return self._response(request, interaction["response"])
        raise AssertionError(f"no recorded response for {request.method} {url} {wanted}")

    def _matches(
        self, interaction: dict[str, Any], method: str, url: str, wanted: dict[str, Any]
    ) -> bool:
        recorded_url, query = _split(interaction["request"]["url"])
        recorded = {**query, **interaction["request"].get("body", {})}
        recorded = {k: v for k, v in recorded.items() if k not in self.ignore}
        return (interaction["request"]["method"], recorded_url, recorded) == (method, url, wanted)

    def made(self, method: str, path: str) -> list[Call]:
        """Return the requests made with ``method`` to a URL ending in ``path``."""
        return [c for c in self.calls if c.method == method and c.url.endswith(path)]


def order_transport(*names: str) -> OrderTransport:
    """Return a transport replaying the interactions of the named cassettes, in order."""
    return OrderTransport([i for name in names for i in cassette(name)])
