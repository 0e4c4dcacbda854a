"""Step 5: forwarding ``/api/v1/...`` to the service that owns the path.

One :class:`gateway.pipeline.pool.ConnectionPool` per upstream: keep-alive HTTP/1.1 on
asyncio and ``httptools``. Measured here (docs/performance.md): ``aiohttp``'s client cost about a
third of the gateway's CPU per request, a shared ``httpx.AsyncClient`` 8x more than
that; the pool costs a fraction of either. (``aiohttp`` still carries the WebSocket relay,
the health probes and the OpenAPI fetches, which are not per-request work.)

The request body is streamed to the upstream unless it is small and sized, in which case
it is read whole (one write, and an idempotent request can then be retried); the
response is relayed whole when small and sized, streamed otherwise.

Failure handling, per upstream:
- a connection the service has closed is never sent a request (the pool checks before
  reusing one, whatever the method); one that closes after the request was sent and
  before any answer: one retry for idempotent requests with a replayable body;
- unreachable: 503; no answer within the read timeout: 504; a malformed answer: 502;
  all in the envelope;
- a circuit breaker (:mod:`gateway.pipeline.circuit`) opens after consecutive failures and
  answers 503 at once, with ``Retry-After``, until a trial request succeeds.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from starlette.types import Receive, Scope, Send

from gateway.pipeline.circuit import CircuitBreaker
from gateway.pipeline.pool import (
    ConnectFailed,
    ConnectionDropped,
    ConnectionPool,
    Headers,
    MalformedResponse,
    ReadTimeout,
    UpstreamFailure,
)
from gateway.pipeline.websocket import refused_handshake
from shared.errors import (
    DependencyUnavailableError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UpstreamError,
)

logger = logging.getLogger("gateway.proxy")

# Hop-by-hop headers (RFC 9110 7.6.1), credentials we replace, and those we set ourselves.
_REQUEST_SKIP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"x-request-id",
        b"x-forwarded-for",
        b"authorization",
        b"x-api-key",
        b"cookie",
        b"content-length",  # framing is the pool's: set from the body actually sent
        b"expect",  # the body is sent at once; a 100-continue is not awaited
    }
)
_RESPONSE_SKIP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        b"x-request-id",
    }
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_READ_WHOLE_LIMIT = 1 << 20  # responses up to this size are read whole
_BUFFER_BODY_LIMIT = 64 * 1024  # sized request bodies up to this are read whole


class GatewayTimeoutError(UpstreamError):
    status_code = 504
    error_code = "UPSTREAM_TIMEOUT"
    default_message = "An upstream service did not answer in time."


class CircuitOpenError(ServiceUnavailableError):
    error_code = "SERVICE_UNAVAILABLE"


@dataclass
class Upstream:
    """A service behind the gateway, its connection pools and its circuit breaker."""

    name: str
    base_url: str
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    pool: ConnectionPool | None = None  # HTTP forwarding
    session: aiohttp.ClientSession | None = None  # WebSocket relay, health, OpenAPI

    @property
    def ws_base_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    prefix: bytes = field(init=False)  # the base URL's path, put before forwarded paths

    def __post_init__(self) -> None:
        self.prefix = urlsplit(self.base_url).path.rstrip("/").encode()


def new_pool(
    base_url: str, *, read_timeout: float, connect_timeout: float, max_connections: int
) -> ConnectionPool:
    """The forwarding pool for the upstream at ``base_url`` (in the running loop)."""
    parts = urlsplit(base_url)
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    assert parts.hostname is not None
    return ConnectionPool(
        parts.hostname,
        parts.port or (443 if tls else 80),
        max_connections=max_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tls=tls,
    )


def new_session(
    *, read_timeout: float, connect_timeout: float, max_connections: int
) -> aiohttp.ClientSession:
    """A pooled client session for one upstream."""
    connector = aiohttp.TCPConnector(
        limit=max_connections, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Cookies are the services' business with their clients, not ours to keep.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        ),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        raise_for_status=refused_handshake,
    )


class ClientDisconnected(Exception):
    """The client went away while sending its body: nothing is forwarded or answered."""


async def _stream_body(receive: Receive, first: bytes, max_bytes: int) -> AsyncIterator[bytes]:
    size = len(first)
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_bytes})
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _read_body(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
    """Read up to ``_BUFFER_BODY_LIMIT`` bytes; returns them and whether more follow."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_bytes})
        chunks.append(chunk)
        more = message.get("more_body", False)
        if not more or size > _BUFFER_BODY_LIMIT:
            return b"".join(chunks), more


def _headers(
    scope: Scope, token: str | None, request_id: str, client_ip: str | None
) -> tuple[Headers, int | None, bool]:
    """The headers to forward, the body's length if sized, and whether it is chunked."""
    headers: Headers = []
    length: int | None = None
    chunked = False
    prior_forwarded = None
    for name, value in scope["headers"]:
        if name in _REQUEST_SKIP:
            if name == b"content-length":
                length = int(value)  # well formed: the server parsed it
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-forwarded-for":
                prior_forwarded = value
            continue
        headers.append((name, value))
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode("latin-1")))
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    if client_ip:
        ip = client_ip.encode("latin-1")
        headers.append(
            (b"x-forwarded-for", prior_forwarded + b", " + ip if prior_forwarded else ip)
        )
    return headers, length, chunked


async def forward(
    upstream: Upstream,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    token: str | None,
    request_id: str,
    client_ip: str | None,
    response_headers: Headers,
    max_body_bytes: int,
) -> None:
    """Send the request in ``scope`` to ``upstream`` and relay its answer through ``send``.
    Raises :class:`shared.errors.AppError` subclasses before anything was sent."""
    method: str = scope["method"]
    now = time.monotonic()
    if not upstream.breaker.allow(now):
        raise CircuitOpenError(
            f"The {upstream.name} service is unavailable.",
            details={"service": upstream.name, "dependency": upstream.name, "circuit": "open"},
            headers={"Retry-After": str(upstream.breaker.retry_after(now))},
        )
    target: bytes = scope.get("raw_path") or scope["path"].encode()
    if upstream.prefix:
        target = upstream.prefix + target
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    headers, length, chunked = _headers(scope, token, request_id, client_ip)

    body: bytes | AsyncIterator[bytes] | None = None
    streamed_length: int | None = None
    replayable = True
    if length is not None or chunked:
        if length is not None and length > max_body_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_body_bytes})
        try:
            first, more = await _read_body(receive, max_body_bytes)
        except ClientDisconnected:
            return
        if more:
            body = _stream_body(receive, first, max_body_bytes)
            streamed_length = length
            replayable = False
        else:
            body = first

    pool = upstream.pool
    assert pool is not None
    attempts = 2 if method in _IDEMPOTENT and replayable else 1
    for attempt in range(attempts):
        try:
            response = await pool.request(
                method, target, headers, body, content_length=streamed_length
            )
            break
        except ClientDisconnected:
            return  # mid-body: the upstream connection was closed, nobody to answer
        except ReadTimeout:
            upstream.breaker.record_failure(time.monotonic())
            raise GatewayTimeoutError(details={"service": upstream.name}) from None
        except ConnectionDropped as exc:
            if exc.reused and attempt + 1 < attempts:
                continue  # a kept-alive connection the service had closed: a fresh one
            raise _unavailable(upstream, exc) from None
        except ConnectFailed as exc:
            raise _unavailable(upstream, exc) from None
        except MalformedResponse as exc:
            upstream.breaker.record_failure(time.monotonic())
            logger.warning("upstream %s answered badly: %s", upstream.name, exc)
            raise UpstreamError(details={"service": upstream.name}) from None
    upstream.breaker.record_success()

    status = response.status
    headers_out = [(n, v) for n, v in response.headers if n not in _RESPONSE_SKIP]
    headers_out.extend(response_headers)
    try:
        length_out = response.content_length()
        if method == "HEAD":
            await send({"type": "http.response.start", "status": status, "headers": headers_out})
            await send({"type": "http.response.body", "body": b""})
        elif length_out is not None and length_out <= _READ_WHOLE_LIMIT:
            try:
                data = await response.read()
            except UpstreamFailure as exc:
                logger.warning("upstream %s answer failed: %s", upstream.name, exc)
                raise UpstreamError(details={"service": upstream.name}) from None
            await send({"type": "http.response.start", "status": status, "headers": headers_out})
            await send({"type": "http.response.body", "body": data})
        else:
            headers_out = [(n, v) for n, v in headers_out if n != b"content-length"]
            await send({"type": "http.response.start", "status": status, "headers": headers_out})
            # A failure from here on cuts the client's answer short (the server closes
            # the connection): the status has been sent already.
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
    finally:
        response.release()


def _unavailable(upstream: Upstream, exc: Exception) -> ServiceUnavailableError:
    upstream.breaker.record_failure(time.monotonic())
    logger.warning("upstream %s unreachable: %s", upstream.name, exc)
    return ServiceUnavailableError(
        f"The {upstream.name} service is unavailable.",
        details={"service": upstream.name, "dependency": upstream.name},
        headers={"Retry-After": str(DependencyUnavailableError.retry_after)},
    )
