"""Step 0: request heads bounded and refused in the envelope, by the protocol the gateway
is served with (uvicorn + httptools, on loopback, with a trivial app behind it)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.pipeline.wire import HeadLimits, protocol_class

LIMITS = HeadLimits(line_bytes=8 * 1024, head_bytes=64 * 1024, count=100, url_bytes=8 * 1024)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    body = json.dumps({"headers": len(scope["headers"]), "path": scope["path"]}).encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def served() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=protocol_class(LIMITS), lifespan="off", log_config=None, log_level="critical"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` raw, read until the server closes (or one answer arrives)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        # The server may refuse before reading everything: its answer is there anyway.
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()


def envelope(status: int, headers: dict[str, str], body: bytes, code: str) -> dict[str, object]:
    assert headers["content-type"] == "application/json", (status, body[:200])
    document: dict[str, object] = json.loads(body)
    assert set(document) == {"error_code", "message", "details", "timestamp", "request_id"}
    assert document["error_code"] == code
    assert headers["x-request-id"] == document["request_id"]
    assert headers["connection"] == "close"
    return document


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nhost: x\r\n" + b"".join(headers) + b"\r\n"


async def test_a_normal_head_is_served() -> None:
    async with served() as port:
        status, _, body = await exchange(
            port, get(b"/a", *(b"x-h%d: %s\r\n" % (i, b"v" * 7000) for i in range(9)))
        )
        assert status == 200
        assert json.loads(body)["headers"] == 10


@pytest.mark.parametrize(
    ("headers", "limit"),
    [
        ((b"x-big: " + b"a" * (4 * 1024 * 1024) + b"\r\n",), "head_bytes"),
        ((b"x-big: " + b"a" * 9000 + b"\r\n",), "line_bytes"),
        (tuple(b"x-h%d: 1\r\n" % i for i in range(20_000)), "head_bytes"),  # 280 KB
        (tuple(b"x-h%d: 1\r\n" % i for i in range(101)), "count"),
        (tuple(b"x-h%d: %s\r\n" % (i, b"v" * 8000) for i in range(9)), "head_bytes"),
    ],
    ids=["4MB-header", "9KB-line", "20000-headers", "101-headers", "72KB-head"],
)
async def test_oversized_heads_are_431_in_the_envelope(
    headers: tuple[bytes, ...], limit: str
) -> None:
    async with served() as port:
        status, answer_headers, body = await exchange(port, get(b"/a", *headers))
        assert status == 431
        document = envelope(status, answer_headers, body, "REQUEST_HEADERS_TOO_LARGE")
        assert document["details"] == {"limit": limit, "max": getattr(LIMITS, limit)}


async def test_over_long_target_is_414_in_the_envelope() -> None:
    async with served() as port:
        status, headers, body = await exchange(port, get(b"/a?q=" + b"x" * 9000))
        assert status == 414
        envelope(status, headers, body, "URI_TOO_LONG")


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"FROBNICATE /a HTTP/1.1\r\nhost: x\r\n\r\n", 501, "METHOD_NOT_IMPLEMENTED"),
        (b"GET /a HTTP/1.1\r\nbad header\r\n\r\n", 400, "MALFORMED_REQUEST"),
        (
            b"GET /a HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            400,
            "MALFORMED_REQUEST",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 501, "METHOD_NOT_IMPLEMENTED"),
    ],
    ids=["unknown-method", "bad-header", "two-lengths", "tls-to-plain-port"],
)
async def test_unparseable_requests_answer_in_the_envelope(
    request_bytes: bytes, status: int, code: str
) -> None:
    async with served() as port:
        got, headers, body = await exchange(port, request_bytes)
        assert got == status
        envelope(got, headers, body, code)


async def test_limits_apply_to_each_request_of_a_kept_alive_connection() -> None:
    async with served() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            half = tuple(b"x-h%d: %s\r\n" % (i, b"v" * 4000) for i in range(8))  # 32 KiB
            for _ in range(4):  # 128 KiB over one connection, each head within the limit
                writer.write(get(b"/a", *half))
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
        finally:
            writer.close()


def test_the_uvicorn_internals_relied_on_are_there() -> None:
    relied_on = ("data_received", "send_400_response", "on_headers_complete", "on_message_complete")
    for name in relied_on:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    # The head as parsed so far, read when it is complete.
    source = inspect.getsource(HttpToolsProtocol)
    assert "self.url += url" in source
    assert "self.headers.append((name, value))" in source
    # GatewayWebSocketProtocol marks a denial as the handshake's end with this flag.
    assert "self.handshake_complete = " in inspect.getsource(WebSocketsSansIOProtocol)
