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


_last_ts = 0


def next_ts() -> int:
    """Now in epoch ms, strictly increasing across calls (as a feed's timestamps are)."""
    global _last_ts
    _last_ts = max(time.time_ns() // 1_000_000, _last_ts + 1)
    return _last_ts


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
        ts=ts if ts is not None else next_ts(),
    )


async def publish_tick(bus: Bus, payload: TickPayload) -> None:
    await bus.publish(f"market.tick.{payload.ticker}", payload)


def mint_token(key_file: str, subject: str, role: str = "viewer") -> dict[str, str]:
    """An access token for any subject, signed with the gateway's key (as the gateway
    would issue it): lets tests and benchmarks open sockets for many distinct users."""
    from shared.jwt import SigningKey, TokenSigner

    signer = TokenSigner(SigningKey.from_file(key_file), issuer="bourse", audience="bourse-api")
    return {"Authorization": f"Bearer {signer.issue(subject, [role])}"}


class StalledReader:
    """A client that subscribes and then stops reading (a raw socket with a tiny receive
    buffer: a WebSocket library would keep reading into its own queue)."""

    def __init__(self, url: str, path: str, headers: Mapping[str, str]) -> None:
        import base64
        import os
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self.sock.recv(4096)
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def send(self, **action: Any) -> None:
        import os
        import struct

        payload = orjson.dumps(action)
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 65536
        self.sock.sendall(struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)) + key + masked)

    def read_until_close(self) -> tuple[int, str, int]:
        """Read everything (blocking) until the server's close frame: (code, reason, frames)."""
        import struct

        frames = 0
        while True:
            while True:
                if len(self._buffer) >= 2:
                    length, offset = self._buffer[1] & 0x7F, 2
                    if length == 126 and len(self._buffer) >= 4:
                        length, offset = struct.unpack_from("!H", self._buffer, 2)[0], 4
                    elif length == 127 and len(self._buffer) >= 10:
                        length, offset = struct.unpack_from("!Q", self._buffer, 2)[0], 10
                    if (length < 126 or offset > 2) and len(self._buffer) >= offset + length:
                        break
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed without a close frame")
                self._buffer += chunk
            opcode = self._buffer[0] & 0x0F
            payload = self._buffer[offset : offset + length]
            self._buffer = self._buffer[offset + length :]
            if opcode == 8:
                code = struct.unpack_from("!H", payload)[0]
                return code, payload[2:].decode(), frames
            frames += 1

    def close(self) -> None:
        self.sock.close()
