"""The forwarding pool tested as an HTTP client is tested, against a real upstream: a
Starlette app served by uvicorn (httptools, as the services run) on loopback, with routes
that answer every status class, sized and chunked, and routes that misbehave on purpose
(an unhandled error, after which uvicorn closes the connection without saying so; a
stream that breaks half-way; ``Connection: close``). The protocol-level misbehaviours
uvicorn never shows (bytes after a complete answer, an answer before the request body
was read) use a raw asyncio server.

What must hold after every answer: the connection is reused exactly when it can be, a
request that never reached the upstream is sent again on a fresh connection whatever
its method, and a connection is never shared by two answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.pipeline.pool import ConnectionPool, MalformedResponse
from gateway.tests.test_pool import read_request

STATUSES = (200, 201, 202, 204, 301, 304, 400, 401, 404, 409, 422, 429, 500, 502, 503)


def _peer(request: Request) -> dict[str, str]:
    assert request.client is not None
    return {"x-peer": str(request.client.port)}


async def sized(request: Request) -> Response:
    status = int(request.path_params["status"])
    if status in (204, 304):
        return Response(status_code=status, headers=_peer(request))
    body = {"error_code": f"E{status}", "message": "x" * 200, "status": status}
    return JSONResponse(body, status_code=status, headers=_peer(request))


async def chunked(request: Request) -> Response:
    status = int(request.path_params["status"])

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b'{"piece": %d}\n' % i

    return StreamingResponse(pieces(), status_code=status, headers=_peer(request))


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, headers=_peer(request))


async def crash(request: Request) -> Response:
    # Starlette answers 500 and re-raises; uvicorn then closes the connection without a
    # ``Connection: close`` (what every service does on an unexpected error).
    await request.body()
    raise RuntimeError("deliberate failure")


async def broken_stream(request: Request) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"first piece\n"
        await asyncio.sleep(0)
        raise RuntimeError("deliberate failure mid-answer")

    return StreamingResponse(pieces(), headers=_peer(request))


async def closing(request: Request) -> Response:
    return Response(b"bye", headers={**_peer(request), "connection": "close"})


APP = Starlette(
    routes=[
        Route("/sized/{status}", sized, methods=["GET", "POST", "DELETE"]),
        Route("/chunked/{status}", chunked, methods=["GET", "POST"]),
        Route("/echo", echo, methods=["POST", "PUT", "PATCH"]),
        Route("/crash", crash, methods=["GET", "POST", "PATCH"]),
        Route("/broken", broken_stream),
        Route("/close", closing),
    ]
)


@asynccontextmanager
async def uvicorn_upstream(
    *, max_connections: int = 4, keep_alive: float = 5.0
) -> AsyncIterator[ConnectionPool]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        APP,
        http="httptools",
        lifespan="off",
        log_config=None,
        log_level="critical",  # the deliberate failures' tracebacks are expected
        access_log=False,
        timeout_keep_alive=int(keep_alive) or 1,
    )
    config.timeout_keep_alive = keep_alive  # type: ignore[assignment]  # sub-second in tests
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    pool = ConnectionPool("127.0.0.1", port, max_connections=max_connections, read_timeout=5.0)
    try:
        yield pool
    finally:
        await pool.close()
        server.should_exit = True
        await task
        sock.close()


async def call(
    pool: ConnectionPool, method: str, target: bytes, body: bytes | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    response = await pool.request(method, target, [(b"x-test", b"1")], body)
    try:
        data = await response.read()
    finally:
        response.release()
    return response.status, dict(response.headers), data


def in_uvloop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> Awaitable[None]:
    """Run ``scenario`` on a uvloop event loop (the one the gateway runs on) in a thread."""
    return asyncio.to_thread(lambda: uvloop.run(scenario()))


# -- every status class, sized and chunked, keeps the connection --------------------------


@pytest.mark.parametrize("kind", ["sized", "chunked"])
async def test_every_status_class_leaves_the_connection_reusable(kind: str) -> None:
    async with uvicorn_upstream() as pool:
        peers = set()
        for status in STATUSES:
            if kind == "chunked" and status in (204, 304):
                continue
            got, headers, body = await call(pool, "GET", b"/%s/%d" % (kind.encode(), status))
            assert got == status
            if status in (204, 304):
                assert body == b""
            elif kind == "sized":
                assert json.loads(body)["status"] == status
            else:
                assert body == b"".join(b'{"piece": %d}\n' % i for i in range(5))
            peers.add(headers[b"x-peer"])
        assert len(peers) == 1, "every answer was complete: one connection carried them all"
        assert pool.open_connections == pool.idle_connections == 1


async def test_head_answers_leave_the_connection_reusable() -> None:
    async with uvicorn_upstream() as pool:
        peers = set()
        for status in (200, 404, 500):
            got, headers, body = await call(pool, "HEAD", b"/sized/%d" % status)
            assert (got, body) == (405, b"") or (got, body) == (status, b"")
            peers.add(headers.get(b"x-peer"))
            got, headers, body = await call(pool, "POST", b"/echo", b"after head")
            assert (got, body) == (200, b"after head")
            peers.add(headers[b"x-peer"])
        assert len(peers - {None}) == 1


async def test_sized_and_chunked_request_bodies_after_error_answers() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(4):
            yield b"part %d;" % i

    async with uvicorn_upstream() as pool:
        for status in (400, 404, 500, 503):
            assert (await call(pool, "POST", b"/sized/%d" % status, b"{}"))[0] == status
            got, _, body = await call(pool, "PUT", b"/echo", b"sized body")
            assert (got, body) == (200, b"sized body")
            response = await pool.request("PATCH", b"/echo", [], chunks())
            assert response.status == 200
            assert await response.read() == b"part 0;part 1;part 2;part 3;"
            response.release()
        assert pool.open_connections == 1


# -- misbehaving upstreams ----------------------------------------------------------------


async def _post_after_unhandled_errors() -> None:
    async with uvicorn_upstream() as pool:
        for i in range(30):
            status, _, _ = await call(pool, "POST", b"/crash", b"{}")
            assert status == 500
            # uvicorn has closed that connection; this POST must not land on it.
            status, _, body = await call(pool, "POST", b"/echo", b"payment %d" % i)
            assert (status, body) == (200, b"payment %d" % i)


async def test_post_after_an_unhandled_error_goes_to_a_fresh_connection() -> None:
    await _post_after_unhandled_errors()


async def test_post_after_an_unhandled_error_goes_to_a_fresh_connection_on_uvloop() -> None:
    await in_uvloop(_post_after_unhandled_errors)


async def test_answer_broken_mid_stream_fails_that_request_only() -> None:
    async with uvicorn_upstream() as pool:
        for i in range(5):
            response = await pool.request("GET", b"/broken", [])
            assert response.status == 200
            with pytest.raises(MalformedResponse):
                await response.read()
            response.release()
            status, _, body = await call(pool, "POST", b"/echo", b"next %d" % i)
            assert (status, body) == (200, b"next %d" % i)
        assert pool.open_connections <= 1


async def test_connection_close_answer_is_not_reused() -> None:
    async with uvicorn_upstream() as pool:
        peers = set()
        for _ in range(3):
            status, headers, body = await call(pool, "GET", b"/close")
            assert (status, body) == (200, b"bye")
            peers.add(headers[b"x-peer"])
            assert pool.idle_connections == 0
        assert len(peers) == 3


async def test_connection_closed_by_the_upstream_while_idle_is_not_reused() -> None:
    async with uvicorn_upstream(keep_alive=0.1) as pool:
        _, first, _ = await call(pool, "GET", b"/sized/200")
        await asyncio.sleep(0.3)  # uvicorn closes the idle connection
        status, second, body = await call(pool, "POST", b"/echo", b"later")
        assert (status, body) == (200, b"later")
        assert first[b"x-peer"] != second[b"x-peer"]


async def _mixed_load() -> None:
    async with uvicorn_upstream(max_connections=8) as pool:

        async def one(i: int) -> None:
            kind = i % 6
            if kind == 0:
                assert (await call(pool, "POST", b"/crash", b"{}"))[0] == 500
            elif kind == 1:
                response = await pool.request("GET", b"/broken", [])
                with pytest.raises(MalformedResponse):
                    await response.read()
                response.release()
            elif kind == 2:
                assert (await call(pool, "GET", b"/chunked/404"))[0] == 404
            elif kind == 3:
                assert (await call(pool, "DELETE", b"/sized/409"))[0] == 409
            else:
                status, _, body = await call(pool, "POST", b"/echo", b"order %d" % i)
                assert (status, body) == (200, b"order %d" % i)

        await asyncio.gather(*(one(i) for i in range(600)))
        assert pool.open_connections <= 8
        assert pool.open_connections == pool.idle_connections  # nothing leaked as busy


async def test_mixed_misbehaviour_under_concurrency() -> None:
    await _mixed_load()


async def test_mixed_misbehaviour_under_concurrency_on_uvloop() -> None:
    await in_uvloop(_mixed_load)


# -- protocol-level misbehaviour (raw server) ---------------------------------------------


@asynccontextmanager
async def raw_upstream(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[tuple[ConnectionPool, list[int]]]:
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, max_connections=4, read_timeout=2.0)
    try:
        yield pool, connections
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


async def test_answer_then_close_without_saying_so_retries_any_method() -> None:
    """The upstream answers and closes at once (no ``Connection: close``): the next
    request, even a POST, goes on a fresh connection instead of failing."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()

    async with raw_upstream(handler) as (pool, connections):
        for _ in range(20):
            status, _, body = await call(pool, "POST", b"/", b"x")
            assert (status, body) == (500, b"{}")
        assert len(connections) == 20


async def test_bytes_after_a_complete_answer_do_not_leak_into_it_or_the_next() -> None:
    extra = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-unsolicited: 1\r\n\r\nWRONG"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}" + extra)
            await writer.drain()

    async with raw_upstream(handler) as (pool, connections):
        for _ in range(3):
            status, headers, body = await call(pool, "GET", b"/")
            assert (status, body) == (404, b"{}")
            assert b"x-unsolicited" not in headers
        assert len(connections) == 3  # a connection that said too much is not reused


async def test_answer_before_the_request_body_was_read() -> None:
    """A 413 sent (and the connection closed) before the streamed body was read: the
    caller gets the 413, and the connection is not reused."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.05)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(200):
            await asyncio.sleep(0.001)
            yield b"x" * 65536

    async with raw_upstream(handler) as (pool, _):
        response = await pool.request("POST", b"/upload", [], body())
        assert response.status == 413
        assert await response.read() == b"{}"
        response.release()
        assert pool.open_connections == 0


async def test_pipelined_reuse_after_errors_on_one_connection() -> None:
    answers = [
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 7\r\n\r\nfailed!",
        b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nnot\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 422 Unprocessable\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 12\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        await reader.read()

    async with raw_upstream(handler) as (pool, connections):
        got = [await call(pool, "POST", b"/", b"{}") for _ in answers]
        assert [(s, b) for s, _, b in got] == [
            (500, b"failed!"),
            (404, b"not"),
            (422, b""),
            (304, b""),
            (200, b"ok"),
        ]
        assert len(connections) == 1


# -- a service's unhandled error, across threads (the timing of production) ---------------


class _SlowTracebacks(logging.Handler):
    """uvicorn logs the traceback of an unhandled error *before* it closes the
    connection; a slow log write (a busy disk, a pipe) stretches that gap."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Exception in ASGI application"):
            time.sleep(0.05)


def _service_app() -> Starlette:
    from fastapi import APIRouter, FastAPI

    from shared.http import create_service_app

    router = APIRouter()

    @router.post("/crash")
    async def crash_route() -> None:
        raise RuntimeError("deliberate failure")

    @router.post("/echo")
    async def echo_route(request: Request) -> Response:
        return Response(await request.body())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    return create_service_app(name="t", title="t", version="0", lifespan=lifespan, routers=[router])


async def test_post_after_a_service_error_while_the_service_is_still_logging_it() -> None:
    """The service answers 500, then takes 50 ms to log the traceback before uvicorn
    closes the connection: a request sent on it in between would never be read. The
    500 must say ``Connection: close``, so that the pool never reuses it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            _service_app(), http="httptools", loop="asyncio", lifespan="off", log_config=None
        )
    )
    slow = _SlowTracebacks()
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(slow)
    service_log = logging.getLogger("shared.errors")
    level = service_log.level
    service_log.setLevel(logging.CRITICAL)  # the deliberate failures' own tracebacks
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
            await asyncio.sleep(0.01)
        pool = ConnectionPool("127.0.0.1", sock.getsockname()[1], read_timeout=5.0)
        try:
            for i in range(10):
                status, headers, _ = await call(pool, "POST", b"/crash", b"{}")
                assert status == 500
                assert headers.get(b"connection") == b"close"
                status, _, body = await call(pool, "POST", b"/echo", b"order %d" % i)
                assert (status, body) == (200, b"order %d" % i)
        finally:
            await pool.close()
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        uvicorn_log.removeHandler(slow)
        service_log.setLevel(level)
        sock.close()
