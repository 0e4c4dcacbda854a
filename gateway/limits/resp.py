"""A small Redis client for the rate limiter's one command, ``EVALSHA``.

Why not redis-py: profiled under load (docs/performance.md), redis-py's asyncio client
spent about a fifth of the gateway's CPU per request on the limiter's single call
(connection-pool checkout, ``asyncio.wait_for`` around every read, RESP3 parsing in
Python). This client keeps one connection, writes every command issued during one
event-loop turn in a single ``write`` (pipelining: concurrent requests share syscalls
while each check stays one atomic command), and parses the few reply types the script
returns. Timeouts are enforced by one periodic watchdog rather than a timer per call:
a call fails when it is overdue *and* Redis has sent nothing for the timeout.

Supports ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs with a password and a
database number. Any failure fails every pending call with :class:`RedisUnavailable` and
drops the connection; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

_CRLF = b"\r\n"
_SHAS: dict[str, str] = {}  # script -> its SHA1, computed once


class RedisUnavailable(ConnectionError):
    """Redis could not be reached or did not answer in time."""


class RedisReplyError(Exception):
    """Redis answered with an error (``-ERR ...``)."""


def encode(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse(buffer: bytearray, start: int) -> tuple[Any, int] | None:
    """One reply from ``buffer`` at ``start``: (value, next position), or None if the
    reply is not complete yet. Errors are returned as :class:`RedisReplyError`."""
    end = buffer.find(_CRLF, start)
    if end < 0:
        return None
    kind, line = buffer[start], bytes(buffer[start + 1 : end])
    position = end + 2
    if kind == 58:  # ':' integer
        return int(line), position
    if kind == 43:  # '+' simple string
        return line.decode(), position
    if kind == 45:  # '-' error
        return RedisReplyError(line.decode()), position
    if kind == 36:  # '$' bulk string
        length = int(line)
        if length < 0:
            return None, position
        if len(buffer) < position + length + 2:
            return None
        return bytes(buffer[position : position + length]), position + length + 2
    if kind == 42:  # '*' array
        count = int(line)
        items = []
        for _ in range(max(count, 0)):
            parsed = parse(buffer, position)
            if parsed is None:
                return None
            item, position = parsed
            items.append(item)
        return (items if count >= 0 else None), position
    raise RedisReplyError(f"unexpected reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self, client: PipelinedRedis) -> None:
        self.client = client
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client._last_received = time.monotonic()
        buffer = self.buffer
        buffer.extend(data)
        position = 0
        pending = self.client._pending
        while pending:
            try:
                parsed = parse(buffer, position)
            except (ValueError, RedisReplyError) as exc:
                self.client._fail(RedisUnavailable(f"bad reply: {exc}"))
                return
            if parsed is None:
                break
            value, position = parsed
            future, _ = pending.popleft()
            if not future.done():
                if isinstance(value, RedisReplyError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        del buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client._protocol is self:  # not an old connection we already dropped
            self.client._fail(RedisUnavailable(f"connection lost: {exc}"))


class PipelinedRedis:
    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        parsed = urlparse(url)
        self._scheme = parsed.scheme
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._path = unquote(parsed.path) if parsed.scheme == "unix" else None
        self._username = unquote(parsed.username) if parsed.username else None
        self._password = unquote(parsed.password) if parsed.password else None
        database = parse_qs(parsed.query).get("db", [""])[0]
        if parsed.scheme != "unix" and parsed.path.strip("/"):
            database = parsed.path.strip("/")
        self._database = int(database) if database else 0
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_received = 0.0

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            if self._path is not None:
                _, protocol = await asyncio.wait_for(
                    loop.create_unix_connection(lambda: _Protocol(self), self._path),
                    self._timeout,
                )
            else:
                context = ssl.create_default_context() if self._scheme == "rediss" else None
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Protocol(self), self._host, self._port, ssl=context
                    ),
                    self._timeout,
                )
        except (OSError, TimeoutError) as exc:
            raise RedisUnavailable(f"cannot connect: {exc!r}") from None
        self._protocol = protocol
        setup = []
        if self._password is not None:
            auth = ("AUTH", self._username) if self._username else ("AUTH",)
            setup.append(self._send(encode(*auth, self._password)))
        if self._database:
            setup.append(self._send(encode("SELECT", self._database)))
        for reply in await asyncio.gather(*setup, return_exceptions=True):
            if isinstance(reply, BaseException):
                self._fail(RedisUnavailable(f"setup failed: {reply}"))
                raise RedisUnavailable(f"setup failed: {reply}")
        return protocol

    async def _ensure(self) -> _Protocol:
        if self._protocol is not None:
            return self._protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, future: asyncio.Future[_Protocol]) -> None:
        self._connecting = None
        if not future.cancelled():
            future.exception()  # retrieved; callers get it through the shield

    def _send(self, command: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((future, time.monotonic() + self._timeout))
        self._outgoing.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout / 2, self._check_timeouts)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            self._fail(RedisUnavailable("not connected"))
            return
        protocol.transport.write(b"".join(outgoing))

    def _check_timeouts(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        now = time.monotonic()
        # Overdue and silent: replies still arriving mean a busy event loop here, not a
        # dead Redis, and falling back to local buckets would not help.
        if self._pending[0][1] < now and now - self._last_received > self._timeout:
            self._fail(RedisUnavailable(f"no answer within {self._timeout:g}s"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(
            self._timeout / 2, self._check_timeouts
        )

    def _fail(self, error: Exception) -> None:
        protocol, self._protocol = self._protocol, None
        pending, self._pending = self._pending, deque()
        self._outgoing = []
        for future, _ in pending:
            if not future.done():
                future.set_exception(error)
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def execute(self, *parts: bytes | str | int) -> Any:
        await self._ensure()
        return await self._send(encode(*parts))

    async def evalsha(self, script: str, keys: list[str], args: list[int | str]) -> Any:
        """Run ``script`` by its SHA1, loading it on a ``NOSCRIPT`` miss."""
        sha = _SHAS.get(script)
        if sha is None:
            sha = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._fail(RedisUnavailable("closed"))
