"""Helpers for realtime tests (used by tests/test_realtime_*.py too): a WebSocket client
that reads the protocol's frames, and publishing ticks the way market does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect

from shared.messaging import Bus

Message = dict[str, Any]


class StreamClient:
    """One socket; every frame is a JSON array of messages, read one message at a time."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._buffer: list[Message] = []
        self.seen: list[Message] = []  # every message read so far, in order

    async def send(self, **action: Any) -> None:
        await self.ws.send(orjson.dumps(action).decode())

    async def next(self, timeout: float = 5.0) -> Message:
        if not self._buffer:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            messages = orjson.loads(frame)
            assert isinstance(messages, list), f"a frame must be a JSON array: {frame!r}"
            self._buffer.extend(messages)
        message = self._buffer.pop(0)
        self.seen.append(message)
        return message

    async def until(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """The first message matching ``predicate``, reading past others."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message in {timeout}s; saw {self.seen[-5:]}")
            message = await self.next(remaining)
            if predicate(message):
                return message

    async def of_type(self, kind: str, timeout: float = 5.0) -> Message:
        return await self.until(lambda m: m["type"] == kind, timeout)

    async def barrier(self, timeout: float = 5.0) -> list[Message]:
        """Everything the server sent before answering a ping sent now."""
        marker = f"barrier-{time.monotonic_ns()}"
        start = len(self.seen)
        await self.send(action="ping", id=marker)
        await self.until(lambda m: m["type"] == "pong" and m.get("id") == marker, timeout)
        return self.seen[start:-1]


@asynccontextmanager
async def stream(
    base_url: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: str = "",
    **options: Any,
) -> AsyncIterator[StreamClient]:
    url = base_url.replace("http://", "ws://") + path + (f"?{query}" if query else "")
    async with connect(url, additional_headers=dict(headers or {}), **options) as ws:
        yield StreamClient(ws)


class TickPayload(BaseModel):
    """What market publishes on ``market.tick.<TICKER>`` (the agreed contract)."""

    ticker: str
    price: float
    previous_close: float
    change: float
    change_percent: float
    volume: int
    ts: int


def tick(
    ticker: str, price: float, *, previous_close: float = 100.0, ts: int | None = None
) -> TickPayload:
    change = round(price - previous_close, 4)
    return TickPayload(
        ticker=ticker,
        price=price,
        previous_close=previous_close,
        change=change,
        change_percent=round(change / previous_close * 100, 4),
        volume=1000,
        ts=ts if ts is not None else time.time_ns() // 1_000_000,
    )


async def publish_tick(bus: Bus, payload: TickPayload) -> None:
    await bus.publish(f"market.tick.{payload.ticker}", payload)
