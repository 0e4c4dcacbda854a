"""The outbound side of a socket: frames written by the flusher, directly on the transport
under our uvicorn protocol (and through ASGI ``send`` elsewhere), conflation while the
transport is paused. Guards what the direct path relies on in uvicorn's internals (see
``services.realtime.server.RealtimeWebSocketProtocol``)."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from packaging.requirements import Requirement
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from services.realtime.server import Inbox, RealtimeWebSocketProtocol
from services.realtime.streams.metrics import StreamStats
from services.realtime.streams.session import (
    FRAME_WRITER,
    Flusher,
    Outbound,
    Quote,
    text_frame,
)


def quote(ticker: str, price: float, pad: int = 0) -> Quote:
    return Quote(
        orjson.dumps({"type": "quote", "ticker": ticker, "price": price, "pad": "x" * pad})
    )


class App:
    """Accepts, buffers what the test says, closes with 1001 on ``close``."""

    def __init__(self) -> None:
        self.direct: bool | None = None
        self.stats = StreamStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        self.direct = FRAME_WRITER in scope.get("extensions", {})
        await websocket.accept()
        out = Outbound(websocket, self.stats, Flusher(), max_lag=5.0)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                await out.stop()
                return
            command = message["text"]
            if command == "batch":
                out.send_control(b'{"type":"pong"}')
                out.offer("A", quote("A", 1.0))
                out.offer("A", quote("A", 2.0))  # conflated: replaces the unsent 1.0
                out.offer("B", quote("B", 3.0))
            elif command.startswith("big"):
                out.offer("C", quote("C", 4.0, pad=int(command[3:])))
            elif command == "close":
                await out.close(1001, "going away")
                return


@asynccontextmanager
async def serving(app: App, ws: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, ws=ws, ws_per_message_deflate=False, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn.Server has no "started" event
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize(
    ("ws", "direct"), [(RealtimeWebSocketProtocol, True), ("websockets-sansio", False)]
)
async def test_frames_reach_the_client(ws: Any, direct: bool) -> None:
    app = App()
    async with serving(app, ws) as url, connect(url, max_size=None) as client:
        await client.send("batch")
        frame = orjson.loads(await client.recv())
        assert [(m["type"], m.get("ticker"), m.get("price")) for m in frame] == [
            ("pong", None, None),
            ("quote", "A", 2.0),
            ("quote", "B", 3.0),
        ]
        for pad in (50, 200, 70_000):  # 7-bit, 16-bit and 64-bit payload lengths
            await client.send(f"big{pad}")
            (message,) = orjson.loads(await client.recv())
            assert len(message["pad"]) == pad
        await client.send("close")
        with pytest.raises(Exception):  # noqa: B017 - the close ends recv
            await client.recv()
        assert client.close_code == 1001
    assert app.direct is direct
    assert (app.stats.delivered, app.stats.frames, app.stats.conflated) == (5, 4, 1)


def test_uvicorn_protocol_has_what_the_direct_path_uses() -> None:
    # The attributes Outbound reads on the protocol object, and how they move.
    loop = asyncio.new_event_loop()
    try:
        config = uvicorn.Config(App(), ws=RealtimeWebSocketProtocol)
        config.load()
        proto = RealtimeWebSocketProtocol(config, ServerState(), {}, _loop=loop)
        assert isinstance(proto, WebSocketsSansIOProtocol)
        assert isinstance(proto.writable, asyncio.Event) and proto.writable.is_set()
        assert proto.close_sent is False and proto.disconnected is False
        proto.pause_writing()
        assert not proto.writable.is_set()
        proto.resume_writing()
        assert proto.writable.is_set()
    finally:
        loop.close()


def test_uvicorn_is_pinned_to_the_minor_version_this_was_written_for() -> None:
    # pyproject.toml bounds uvicorn above, so a lock refresh cannot move it past what the
    # tests in this module checked; this fails when the installed one is outside that.
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in declared if Requirement(d).name == "uvicorn"]
    assert any(spec.operator == "<" for spec in pin.specifier), f"no upper bound: {pin}"
    assert version("uvicorn") in pin.specifier, (version("uvicorn"), str(pin))


def test_our_protocol_overrides_methods_uvicorn_has() -> None:
    # An override of a method uvicorn renamed would never run (and say nothing).
    ours = {n for n, v in vars(RealtimeWebSocketProtocol).items() if inspect.isfunction(v)}
    assert ours <= set(vars(WebSocketsSansIOProtocol)), ours - set(vars(WebSocketsSansIOProtocol))
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    assert re.search(r"self\.queue\b.*=", init), "uvicorn no longer keeps an inbound queue"


def test_uvicorn_uses_only_what_our_protocol_replaces() -> None:
    # RealtimeWebSocketProtocol swaps the queue for an Inbox and drops request/response
    # after accepting: uvicorn must use no more of them than that.
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert set(re.findall(r"self\.queue\.(\w+)", source)) <= {"put_nowait", "get", "empty"}
    methods = {
        name: inspect.getsource(getattr(WebSocketsSansIOProtocol, name))
        for name, value in vars(WebSocketsSansIOProtocol).items()
        if inspect.isfunction(value)
    }
    assert {n for n, src in methods.items() if "self.request" in src} <= {"handle_connect"}
    assert {n for n, src in methods.items() if "self.response" in src} <= {
        "handle_connect",
        "send",
    }


async def test_inbox_hands_items_to_its_reader_in_order() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await reader == 1
    assert not inbox.empty() and await inbox.get() == 2 and inbox.empty()


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


class FakeWire:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.writable = asyncio.Event()
        self.writable.set()
        self.close_sent = False
        self.disconnected = False


class FakeWebSocket:
    def __init__(self, wire: FakeWire) -> None:
        self.scope = {"extensions": {FRAME_WRITER: wire}}


async def test_a_paused_transport_conflates_then_gets_the_latest() -> None:
    wire = FakeWire()
    stats = StreamStats()
    out = Outbound(FakeWebSocket(wire), stats, Flusher(), max_lag=5.0)  # type: ignore[arg-type]
    shared = quote("A", 1.0)
    out.offer("A", shared)
    await asyncio.sleep(0)
    assert wire.transport.written == [shared.alone()]  # the shared frame, as is
    assert shared.alone() is shared.alone() and shared.alone() == text_frame(
        b"[" + shared.data + b"]"
    )
    wire.writable.clear()  # as uvicorn's pause_writing does
    for price in (2.0, 3.0, 4.0):
        out.offer("A", quote("A", price))
        await asyncio.sleep(0)
    assert len(wire.transport.written) == 1 and stats.conflated == 2
    assert out.lag(asyncio.get_running_loop().time() + 1) >= 1
    wire.writable.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(wire.transport.written) == 2
    assert orjson.loads(wire.transport.written[1][2:])[0]["price"] == 4.0
    wire.close_sent = True  # after the close frame, nothing more is written
    out.offer("A", quote("A", 5.0))
    await asyncio.sleep(0)
    assert len(wire.transport.written) == 2 and out.closing
