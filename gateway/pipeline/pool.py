"""A lean HTTP/1.1 keep-alive client for forwarding to our own services.

Built on an :class:`asyncio.Protocol` and ``httptools`` (the parser uvicorn uses), it does
only what the proxy needs and nothing per request that it does not: no URL objects, no
header multidicts, no cookie or redirect handling, no per-request tasks. Measured in the
gateway benchmark, it costs a fraction of ``aiohttp``'s client CPU (docs/performance.md).

What it does:

- one pool per upstream (``host:port``), up to ``max_connections`` connections, idle ones
  reused most-recently-used first and dropped after ``idle_seconds``; callers beyond the
  limit wait in order for a connection;
- request framing: a bytes body is sent with ``Content-Length``; a streamed body with
  the ``Content-Length`` the caller gives, else ``Transfer-Encoding: chunked``;
- response framing from the parser: ``Content-Length``, chunked, or until the upstream
  closes; no body for ``HEAD``, ``1xx``, ``204`` and ``304``; interim ``1xx`` answers
  (other than ``101``) are skipped;
- the response body is read whole (:meth:`UpstreamResponse.read`) or streamed
  (:meth:`UpstreamResponse.chunks`), with the socket paused while the reader lags;
- timeouts: ``connect_timeout`` to open a connection, ``read_timeout`` for the upstream
  to start answering and between two pieces of the body;
- a connection goes back to the pool only after a complete response that allows
  keep-alive and after the whole request was sent; after an error, a timeout, a
  malformed or cut-short answer, bytes beyond the answer, or a reader that stopped early
  it is closed;
- an idle connection is checked just before it is reused (the upstream's end, or bytes
  nobody asked for, waiting on the socket; a transport already closing): uvicorn closes a
  connection after an unhandled error *without* ``Connection: close``, so the end often
  arrives just after a complete, keep-alive answer. Such a connection is dropped and the
  request goes on another one: it was never sent, so this is safe for any method. Idle
  connections are dropped after ``idle_seconds`` (4 s), below uvicorn's 5 s keep-alive
  timeout, so the pool does not race a service closing an idle connection;
- an answer that arrives while a streamed request body is still being sent (a ``413``
  before the body was read) ends the sending; the caller gets that answer.

Errors (all :class:`UpstreamFailure`)::

    UpstreamFailure
     ├── ConnectFailed          could not open a connection (nothing was sent)
     ├── ConnectionDropped      the connection closed before any answer; ``reused`` says
     │                          whether it came from the pool (then a retry is safe for
     │                          an idempotent request)
     ├── ReadTimeout            no answer, or no more of it, within ``read_timeout``
     └── MalformedResponse      the answer is not valid HTTP/1.1, or it was cut short
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable
from typing import cast

import httptools

Headers = list[tuple[bytes, bytes]]

_HIGH_WATER = 256 * 1024  # buffered response bytes at which reading pauses
_NO_BODY_STATUSES = frozenset({204, 304})
_DNS_SECONDS = 300.0


class UpstreamFailure(Exception):
    """Forwarding to an upstream failed; see the module docstring for the kinds."""


class ConnectFailed(UpstreamFailure):
    pass


class ConnectionDropped(UpstreamFailure):
    def __init__(self, message: str, *, reused: bool) -> None:
        super().__init__(message)
        self.reused = reused


class ReadTimeout(UpstreamFailure, TimeoutError):
    pass


class MalformedResponse(UpstreamFailure):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response currently being read on it."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = pool._loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request
        self.reused = False  # had carried one before the current one (a retry is safe)
        self.counted = False  # the pool counts it among its open connections
        self.busy = False  # carrying a request (between send and release)
        self._parser = httptools.HttpResponseParser(self)
        self._writable: asyncio.Future[None] | None = None
        self._poll: select.poll | None = None  # to see, before a reuse, what waits unread
        self.eof = False  # the upstream ended its side
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._received_any = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._head_only = False
        self._extra = False  # bytes arrived beyond the answer: it ends the connection

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and self._pool.tls is None:  # TLS may send records unasked
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a whole answer: that answer stands
                self.keep_alive = False
                self.abort()
            else:
                self._fail(MalformedResponse(f"malformed answer from the upstream: {exc}"))
        else:
            if self._buffered > _HIGH_WATER and not self._paused and self.transport:
                self._paused = True
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.head_done and self._until_close():
                self.complete = True  # a body delimited by the end of the connection
            elif not self._received_any:
                self.error = ConnectionDropped(
                    f"the upstream closed the connection: {exc or 'EOF'}", reused=self.reused
                )
            else:
                self.error = MalformedResponse("the upstream's answer was cut short")
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)  # the sender sees ``closed``
        self._pool._forget(self)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer to one request: never part of this one, and the
            # connection can no longer be trusted to frame the next.
            self._extra = True
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._extra:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self._extra:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = []  # an interim answer: the real one follows
            return
        self.status = status
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._head_only:
            # llhttp cannot be told a response has no body: take the head as the whole
            # answer and give the next response a fresh parser.
            self.complete = True
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if not self._extra and not self.complete:
            self._body.append(body)
            self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    # -- used by the pool and the response ---------------------------------------

    def _until_close(self) -> bool:
        if self._head_only or self.status in _NO_BODY_STATUSES:
            return False
        for name, _ in self.headers:
            if name in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def reusable(self) -> bool:
        """Whether an idle connection can carry a request: still open and nothing
        waiting on its socket (an idle connection receives nothing but its end)."""
        transport = self.transport
        if self.closed or self.eof or transport is None or transport.is_closing():
            return False
        return self._poll is None or not self._poll.poll(0)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def _wait(self, timeout: float) -> None:
        """Wait for something to happen on the connection (data, end, error)."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, self._timed_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(ReadTimeout("the upstream did not answer in time"))
            waiter.set_result(None)

    async def send(
        self, head: bytes, body: bytes | AsyncIterable[bytes] | None, chunked: bool, timeout: float
    ) -> None:
        transport = self.transport
        assert transport is not None
        self._reset()
        self.busy = True
        self.reused = self.used
        self.used = True
        if body is None or isinstance(body, bytes):
            transport.write(head + body if body else head)
            return
        transport.write(head)
        async for chunk in body:
            if self.head_done:
                # The upstream answered before taking the whole body (a 413, say): that
                # answer is the result, and the connection cannot carry another request.
                self.keep_alive = False
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    await aclose()
                return
            if self.closed:
                raise self.error or ConnectionDropped("the upstream closed", reused=False)
            if chunk:
                if chunked:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    transport.write(chunk)
                if self._writable is not None and not self._writable.done():
                    try:
                        await asyncio.wait_for(asyncio.shield(self._writable), timeout)
                    except TimeoutError:
                        raise ReadTimeout("the upstream stopped reading the body") from None
        if self.head_done:
            self.keep_alive = False
            return
        if self.closed:
            raise self.error or ConnectionDropped("the upstream closed", reused=False)
        if chunked:
            transport.write(b"0\r\n\r\n")

    async def read_head(self, head_only: bool, timeout: float) -> None:
        self._head_only = head_only
        while not self.head_done and self.error is None:
            if self.closed:
                break
            await self._wait(timeout)
        if self.error is not None:
            raise self.error
        if not self.head_done:
            raise ConnectionDropped("the upstream closed the connection", reused=self.reused)

    async def next_chunk(self, timeout: float) -> bytes | None:
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _HIGH_WATER // 4 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            if self.closed:
                raise MalformedResponse("the upstream's answer was cut short")
            await self._wait(timeout)

    def take_body(self) -> bytes | None:
        """The whole body if it has all arrived already (the common case), else None."""
        if self.complete and self.error is None:
            body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
            self._body.clear()
            self._buffered = 0
            return body
        return None


class UpstreamResponse:
    """The status and headers of an upstream's answer; its body is read with
    :meth:`read` or :meth:`chunks`, and :meth:`release` must be called in every case."""

    __slots__ = ("_conn", "_pool", "_timeout", "headers", "status")

    def __init__(self, conn: _Connection, pool: ConnectionPool, timeout: float) -> None:
        self._conn: _Connection | None = conn
        self._pool = pool
        self._timeout = timeout
        self.status = conn.status
        self.headers = conn.headers  # names lower-cased, values as sent

    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                return int(value) if value.isdigit() else None
        return None

    async def read(self) -> bytes:
        conn = self._conn
        assert conn is not None
        body = conn.take_body()
        if body is not None:
            return body
        parts = []
        while (chunk := await conn.next_chunk(self._timeout)) is not None:
            parts.append(chunk)
        return b"".join(parts)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        assert conn is not None
        while (chunk := await conn.next_chunk(self._timeout)) is not None:
            yield chunk

    def release(self) -> None:
        """Give the connection back (reusable only if the answer was read to its end)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one upstream; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 256,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        idle_seconds: float = 4.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_seconds = idle_seconds
        default_port = 443 if tls is not None else 80
        self.host_header = (host if port == default_port else f"{host}:{port}").encode()
        self._loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._count = 0  # open connections, idle or in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._address: str | None = None  # ``host`` resolved, until ``_address_expires``
        self._address_expires = 0.0

    @property
    def open_connections(self) -> int:
        return self._count

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(
        self,
        method: str,
        target: bytes,
        headers: Headers,
        body: bytes | AsyncIterable[bytes] | None = None,
        *,
        content_length: int | None = None,
    ) -> UpstreamResponse:
        """Send ``method target`` with ``headers`` (no ``Host``, framing or hop-by-hop
        headers: the pool sets those) and return the answer's head. A streamed ``body``
        is sent with ``content_length`` when given, else chunked."""
        parts = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        chunked = False
        if isinstance(body, bytes):
            parts += (b"content-length: ", b"%d" % len(body), b"\r\n")
        elif body is not None:
            if content_length is not None:
                parts += (b"content-length: ", b"%d" % content_length, b"\r\n")
            else:
                chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        elif method in ("POST", "PUT", "PATCH"):
            parts.append(b"content-length: 0\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)

        conn = await self._acquire()
        try:
            await conn.send(head, body, chunked, self.read_timeout)
            await conn.read_head(method == "HEAD", self.read_timeout)
        except BaseException:
            self._discard(conn)
            raise
        return UpstreamResponse(conn, self, self.read_timeout)

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise ConnectFailed("the pool is closed")
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                # Checked here, with no await before the request is written: a
                # connection the upstream has closed never gets a request.
                if now - conn.idle_since < self.idle_seconds and conn.reusable():
                    return conn
                self._discard(conn)
            if self._count < self.max_connections:
                return await self._connect()
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake_one()  # pass on the turn we were given
                raise

    async def _connect(self) -> _Connection:
        conn = _Connection(self)
        self._count += 1
        conn.counted = True
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._loop.create_connection(lambda: conn, self.host, self.port, ssl=self.tls)
        except TimeoutError:
            self._discard(conn)
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            self._discard(conn)
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        except BaseException:
            self._discard(conn)
            raise
        return conn

    async def _resolve(self) -> str:
        """``host`` as an address. Resolved once per ``_DNS_SECONDS``: a burst of new
        connections must not queue a name lookup each in the loop's thread pool (on a
        loaded machine that alone overran the connect timeout)."""
        if self._address is not None and time.monotonic() < self._address_expires:
            return self._address
        try:
            address = str(ipaddress.ip_address(self.host))
        except ValueError:
            infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            address = str(infos[0][4][0])
        self._address, self._address_expires = address, time.monotonic() + _DNS_SECONDS
        return address

    def _release(self, conn: _Connection) -> None:
        conn.busy = False
        if (
            conn.complete
            and conn.keep_alive
            and not conn._extra
            and not conn.closed
            and not self._closed
        ):
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
            self._wake_one()
        else:
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.abort()
        self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        """``conn`` is closed: stop counting it (once)."""
        if not conn.counted:
            return
        conn.counted = False
        self._count -= 1
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; requests in flight fail."""
        self._closed = True
        for conn in list(self._idle):
            self._discard(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
