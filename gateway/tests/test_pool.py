"""The forwarding pool against small scripted upstreams: framing (length, chunked, until
close, no body), keep-alive reuse, discard after errors, timeouts, malformed answers,
streamed bodies both ways and the connection limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.pipeline.pool import (
    ConnectFailed,
    ConnectionDropped,
    ConnectionPool,
    MalformedResponse,
    ReadTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request: its first line, headers (lower-case names) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return lines[0], headers, body


class Upstream:
    """A TCP server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> ConnectionPool:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.pool = ConnectionPool("127.0.0.1", port, read_timeout=1.0, max_connections=4)
        return self.pool

    async def __aexit__(self, *_: object) -> None:
        await self.pool.close()
        assert self.server is not None
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


def answering(*responses: bytes) -> Handler:
    """Answer successive requests on a connection with ``responses`` (then keep reading)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        await reader.read()

    return handler


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello"


async def test_sized_answer_and_connection_reuse() -> None:
    upstream = Upstream(answering(OK, OK, OK))
    async with upstream as pool:
        for _ in range(3):
            response = await pool.request("GET", b"/a?b=1", [(b"x-test", b"1")])
            assert response.status == 200
            assert (b"content-type", b"text/plain") in response.headers
            assert response.content_length() == 5
            assert await response.read() == b"hello"
            response.release()
        assert upstream.connections == 1
        assert pool.idle_connections == 1


async def test_request_head_has_host_and_framing() -> None:
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            seen.append(await read_request(reader))
            writer.write(OK)

    async def pieces() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b""
        yield b"cd"

    async with Upstream(handler) as pool:
        for body, length in ((b"xyz", None), (pieces(), None), (pieces(), 4)):
            response = await pool.request("POST", b"/p", [], body, content_length=length)
            await response.read()
            response.release()
    (line, headers, body), (_, chunked, streamed), (_, sized, sized_body) = seen
    assert line == b"POST /p HTTP/1.1"
    assert headers[b"host"] == f"127.0.0.1:{pool.port}".encode()
    assert headers[b"content-length"] == b"3" and body == b"xyz"
    assert chunked[b"transfer-encoding"] == b"chunked" and streamed == b"abcd"
    assert sized[b"content-length"] == b"4" and sized_body == b"abcd"


async def test_chunked_answer_streamed() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    upstream = Upstream(answering(answer, OK))
    async with upstream as pool:
        response = await pool.request("GET", b"/", [])
        assert response.content_length() is None
        assert b"".join([chunk async for chunk in response.chunks()]) == b"abcde"
        response.release()
        again = await pool.request("GET", b"/", [])
        assert await again.read() == b"hello"
        again.release()
        assert upstream.connections == 1


async def test_answer_until_close_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    upstream = Upstream(handler)
    async with upstream as pool:
        for _ in range(2):
            response = await pool.request("GET", b"/", [])
            assert await response.read() == b"all of it"
            response.release()
        assert upstream.connections == 2


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_and_head(status: int) -> None:
    no_body = f"HTTP/1.1 {status} X\r\netag: abc\r\n\r\n".encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
    upstream = Upstream(answering(no_body, head, OK))
    async with upstream as pool:
        response = await pool.request("GET", b"/", [])
        assert response.status == status and await response.read() == b""
        response.release()
        response = await pool.request("HEAD", b"/", [])
        assert response.content_length() == 100 and await response.read() == b""
        response.release()
        response = await pool.request("GET", b"/", [])
        assert await response.read() == b"hello"
        response.release()
        assert upstream.connections == 1


async def test_interim_answer_skipped() -> None:
    upstream = Upstream(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK))
    async with upstream as pool:
        response = await pool.request("POST", b"/", [], b"x")
        assert response.status == 200 and await response.read() == b"hello"
        response.release()


@pytest.mark.parametrize(
    "answer",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    ],
)
async def test_malformed_answers_are_refused_and_discarded(answer: bytes) -> None:
    upstream = Upstream(answering(answer))
    async with upstream as pool:
        with pytest.raises(MalformedResponse):
            response = await pool.request("GET", b"/", [])
            try:
                await response.read()
            finally:
                response.release()
        assert pool.open_connections == 0


async def test_answer_cut_short() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async with Upstream(handler) as pool:
        response = await pool.request("GET", b"/", [])
        with pytest.raises(MalformedResponse):
            await response.read()
        response.release()
        assert pool.open_connections == 0


async def test_closed_before_answer_says_whether_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        if connections == 1:  # answer once, then close at the next request
            writer.write(OK)
            await writer.drain()
            await read_request(reader)

    async with Upstream(handler) as pool:
        first = await pool.request("GET", b"/", [])
        await first.read()
        first.release()
        with pytest.raises(ConnectionDropped) as dropped:
            await pool.request("GET", b"/", [])
        assert dropped.value.reused
        with pytest.raises(ConnectionDropped) as fresh:
            await pool.request("GET", b"/", [])
        assert not fresh.value.reused


async def test_silent_upstream_times_out_and_is_discarded() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with Upstream(handler) as pool:
        pool.read_timeout = 0.2
        with pytest.raises(ReadTimeout):
            await pool.request("GET", b"/", [])
        assert pool.open_connections == 0


async def test_stalled_body_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await reader.read()

    async with Upstream(handler) as pool:
        pool.read_timeout = 0.2
        response = await pool.request("GET", b"/", [])
        with pytest.raises(ReadTimeout):
            await response.read()
        response.release()
        assert pool.open_connections == 0


async def test_unreachable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = ConnectionPool("127.0.0.1", port)
    with pytest.raises(ConnectFailed):
        await pool.request("GET", b"/", [])
    assert pool.open_connections == 0


async def test_reader_that_stops_early_discards_the_connection() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 2000000\r\n\r\n" + b"x" * 2_000_000
    upstream = Upstream(answering(big))
    async with upstream as pool:
        response = await pool.request("GET", b"/", [])
        chunks = response.chunks()
        assert await anext(chunks)
        await chunks.aclose()
        response.release()
        assert pool.open_connections == 0
        again = await pool.request("GET", b"/", [])
        assert await again.read() == b"x" * 2_000_000  # a whole answer on a new connection
        again.release()
        assert upstream.connections == 2


async def test_large_streamed_answer_arrives_whole() -> None:
    body = bytes(range(256)) * 20_000  # 5 MB: reading pauses and resumes on the way
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    async with Upstream(answering(answer)) as pool:
        response = await pool.request("GET", b"/", [])
        received = bytearray()
        async for chunk in response.chunks():
            received += chunk
            await asyncio.sleep(0)
        response.release()
        assert received == body
        assert pool.idle_connections == 1


async def test_connection_limit_makes_callers_wait() -> None:
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await gate.wait()
            writer.write(OK)
            await writer.drain()

    upstream = Upstream(handler)
    async with upstream as pool:

        async def call() -> bytes:
            response = await pool.request("GET", b"/", [])
            try:
                return await response.read()
            finally:
                response.release()

        calls = [asyncio.create_task(call()) for _ in range(10)]
        await asyncio.sleep(0.1)
        assert pool.open_connections == 4
        gate.set()
        assert await asyncio.gather(*calls) == [b"hello"] * 10
        assert upstream.connections == 4
