"""Forwarding ``/api/v1/...`` to the service that owns the path, as a plain ASGI handler.

One pooled ``aiohttp.ClientSession`` per upstream (measured here: forwarding through a
shared ``httpx.AsyncClient`` cost about 8x more CPU per request). The request body is
streamed to the upstream unless it is small and sized, in which case it is read whole
(one write, and an idempotent request can then be retried); the response is relayed
whole when small and sized, streamed otherwise.

Failure handling, per upstream:
- connection refused / reset before any answer: one retry for idempotent methods (a
  pooled keep-alive connection the service just closed is the common cause);
- unreachable: 503; no answer within the read timeout: 504; both in the envelope;
- a circuit breaker (:mod:`gateway.circuit`) opens after consecutive failures and
  answers 503 at once, with ``Retry-After``, until a trial request succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.circuit import CircuitBreaker
from shared.errors import PayloadTooLargeError, ServiceUnavailableError, UpstreamError

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
    """A service behind the gateway, its connection pool and its circuit breaker."""

    name: str
    base_url: str
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    session: aiohttp.ClientSession | None = None

    @property
    def ws_base_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")


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
    )


async def _stream_body(receive: Receive, first: bytes, max_bytes: int) -> AsyncIterator[bytes]:
    size = len(first)
    if first:
        yield first
    while True:
        message = await receive()
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
) -> tuple[CIMultiDict[str], int | None, bool]:
    headers: CIMultiDict[str] = CIMultiDict()
    length: int | None = None
    chunked = False
    prior_forwarded = None
    for name, value in scope["headers"]:
        if name in _REQUEST_SKIP:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"x-forwarded-for":
                prior_forwarded = value.decode("latin-1")
            continue
        if name == b"content-length":
            length = int(value)
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    headers["X-Request-ID"] = request_id
    if client_ip:
        headers["X-Forwarded-For"] = (
            f"{prior_forwarded}, {client_ip}" if prior_forwarded else client_ip
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
    response_headers: list[tuple[bytes, bytes]],
    max_body_bytes: int,
) -> None:
    """Send the request in ``scope`` to ``upstream`` and relay its answer through ``send``.
    Raises :class:`shared.errors.AppError` subclasses before anything was sent."""
    method: str = scope["method"]
    now = time.monotonic()
    if not upstream.breaker.allow(now):
        raise CircuitOpenError(
            f"The {upstream.name} service is unavailable.",
            details={"service": upstream.name, "circuit": "open"},
            headers={"Retry-After": str(upstream.breaker.retry_after(now))},
        )
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    target = upstream.base_url + raw_path.decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    url = URL(target, encoded=True)
    headers, length, chunked = _headers(scope, token, request_id, client_ip)

    data: bytes | AsyncIterator[bytes] | None = None
    replayable = True
    if length is not None or chunked:
        if length is not None and length > max_body_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_body_bytes})
        first, more = await _read_body(receive, max_body_bytes)
        if more:
            data = _stream_body(receive, first, max_body_bytes)
            replayable = False
        else:
            data = first

    assert upstream.session is not None
    attempts = 2 if method in _IDEMPOTENT and replayable else 1
    for attempt in range(attempts):
        try:
            response = await upstream.session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            )
            break
        except PayloadTooLargeError:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            upstream.breaker.record_failure(time.monotonic())
            raise GatewayTimeoutError(details={"service": upstream.name}) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if attempt + 1 < attempts and not isinstance(exc, aiohttp.ClientConnectorError):
                continue  # a reused connection the service had closed: try a fresh one
            upstream.breaker.record_failure(time.monotonic())
            logger.warning("upstream %s unreachable: %s", upstream.name, exc)
            raise ServiceUnavailableError(
                f"The {upstream.name} service is unavailable.",
                details={"service": upstream.name},
            ) from None
    upstream.breaker.record_success()

    headers_out = [
        (name.lower(), value)
        for name, value in response.raw_headers
        if name.lower() not in _RESPONSE_SKIP
    ]
    headers_out.extend(response_headers)
    length_out = response.content_length
    try:
        if method == "HEAD":
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": b""})
        elif length_out is not None and length_out <= _READ_WHOLE_LIMIT:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                raise UpstreamError(details={"service": upstream.name}) from None
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": body})
        else:
            headers_out = [(n, v) for n, v in headers_out if n != b"content-length"]
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers_out}
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
    finally:
        response.release()
