"""The live stream: PostgreSQL ``LISTEN/NOTIFY`` relayed to WebSocket subscribers.

Triggers (migration 0017) ``pg_notify`` each new order, fill, recent bar and system event on
``prism_<channel>``. One asynchronous psycopg connection per API process listens on all of
them (no polling) and hands each message to the subscribers of its channel whose symbol filter
matches. Every subscriber has a bounded queue: a client too slow to drain it is dropped with
close code :data:`SLOW_CLIENT` instead of making the others (or the database) wait.

Protocol: connect to ``/api/v1/stream?token=<access token>`` (optionally ``&queue=<n>``, a
smaller buffer than ``PRISM_API_STREAM_QUEUE``); send
``{"subscribe": ["orders", "bars"], "symbols": ["SPX"]}`` (no symbols: all); receive
``{"subscribed": [...], "refused": {...}}`` and then ``{"channel": ..., "data": {...}}``.
A channel above the caller's role (see :data:`prism.api.rules.CHANNEL_ROLES`) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import psycopg

from prism.api.rules import CHANNEL_ROLES
from prism.api.security import role_allows

SLOW_CLIENT = 1013
"""Close code for a client whose queue overflowed ("try again later")."""
UNAUTHORISED = 1008
"""Close code for a missing or invalid token (policy violation)."""


@dataclass(eq=False)
class Subscriber:
    """One WebSocket connection's subscriptions and its bounded queue."""

    role: str
    size: int
    channels: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.size)

    def subscribe(self, channels: list[str], symbols: list[str]) -> dict[str, str]:
        """Subscribe to the channels the role allows; return the refused ones with why."""
        refused: dict[str, str] = {}
        for channel in channels:
            needed = CHANNEL_ROLES.get(channel)
            if needed is None:
                refused[channel] = f"unknown channel; use {', '.join(CHANNEL_ROLES)}"
            elif not role_allows(self.role, needed):
                refused[channel] = f"needs role {needed}"
            else:
                self.channels.add(channel)
        self.symbols = set(symbols)
        return refused

    def wants(self, channel: str, data: dict[str, Any]) -> bool:
        """Return whether a message on ``channel`` about ``data`` is for this subscriber."""
        if channel not in self.channels:
            return False
        symbol = data.get("symbol")
        return not self.symbols or symbol is None or symbol in self.symbols

    def offer(self, message: dict[str, Any]) -> None:
        """Queue ``message``, or mark the subscriber overflowed when its queue is full."""
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    """The process's one listening connection and its subscribers."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        """Start listening (once); return when LISTEN is in place."""
        if self.task is None or self.task.done():
            self.ready = asyncio.Event()
            self.task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self.ready.wait(), 30)

    async def stop(self) -> None:
        """Stop listening."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            for channel in CHANNEL_ROLES:
                await conn.execute(f"LISTEN prism_{channel}")
            self.ready.set()
            async for note in conn.notifies():
                self.publish(note.channel.removeprefix("prism_"), note.payload)

    def publish(self, channel: str, payload: str) -> None:
        """Hand one notification to every subscriber that wants it."""
        try:
            data = json.loads(payload)
        except ValueError:
            data = {"raw": payload}
        message = {"channel": channel, "data": data}
        for subscriber in list(self.subscribers):
            if subscriber.wants(channel, data):
                subscriber.offer(message)
