"""Serving the realtime service: uvicorn, with sockets told to reconnect on shutdown.

On SIGTERM uvicorn stops accepting, then closes every WebSocket with 1012 itself and only
afterwards runs the lifespan's shutdown. A stream client should hear 1001 ("going away":
reconnect, to another node), so this server closes our sockets first: stop accepting ->
close every socket with 1001 -> uvicorn's shutdown -> lifespan exit (stop the streams,
then drain NATS).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from typing import Any, cast

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from services.realtime.app import NAME, create_app
from services.realtime.config import RealtimeSettings
from services.realtime.streams.session import FRAME_WRITER
from shared.log import configure_logging
from shared.runtime import GC_THRESHOLDS, PartServer
from shared.settings import SettingsError, load_settings

MAX_CLIENT_MESSAGE = 64 * 1024  # bytes: the largest client frame (a subscribe of 1,000 tickers)


class RealtimeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, handing itself to the app as the frame writer.

    The streams write data frames straight to the transport (``streams.session``): one
    ``transport.write`` per frame instead of the ASGI send chain (Starlette's wrappers,
    uvicorn's ``send``, websockets' frame objects), which cost a third of the CPU at load.
    They rely on these attributes of uvicorn 0.54's protocol (guarded by
    ``services/realtime/tests/test_session.py``): ``transport``; ``writable``, an
    ``asyncio.Event`` cleared while the transport has paused writing; ``close_sent`` and
    ``disconnected``, after which no data frame may be written. Data frames need no state
    in websockets' ``ServerProtocol`` (it only tracks fragmentation and closing), and they
    are sent uncompressed, so permessage-deflate is off (``serve``). Handshake, client
    frames, pings and the closing handshake stay uvicorn's.

    Per-connection memory (an idle socket cost 38 KB; docs/performance.md): the inbound
    queue is an :class:`Inbox` instead of an ``asyncio.Queue`` (four deques, ~3 KB), and
    the parsed handshake request and response (their headers, ~3 KB) are dropped once the
    socket is accepted — uvicorn reads ``response`` only to accept and ``request`` never
    after ``handle_connect``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = cast(Any, Inbox())

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            # The app's task is created but has not run: it sees the extension.
            extensions: dict[str, Any] = cast(dict[str, Any], self.scope["extensions"])
            extensions[FRAME_WRITER] = self

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.request = self.response = cast(Any, None)


class Inbox:
    """What uvicorn's protocol uses of its ``asyncio.Queue`` (``put_nowait``, ``get``,
    ``empty``) for its one reader, the app's ``receive``: a list and a future."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class RealtimeServer(PartServer):
    """Every part's server (start-up state frozen out of the collector's sight), closing
    our sockets with 1001 before uvicorn's shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before telling clients to come back
        realtime = getattr(self._app.state, "realtime", None)
        if realtime is not None:
            await realtime.hub.go_away()
        await super().shutdown(sockets)


def listening_socket(host: str, port: int, send_buffer: int) -> socket.socket:
    """The listening socket; accepted sockets inherit its send buffer size (Linux)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def serve() -> None:
    try:
        settings = load_settings(RealtimeSettings)
    except SettingsError as exc:
        sys.stderr.write(f"{NAME}: {exc}\n")
        raise SystemExit(2) from None
    configure_logging(NAME, settings.log_level, settings.log_format)
    gc.set_threshold(*GC_THRESHOLDS)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=RealtimeWebSocketProtocol,
        ws_max_size=MAX_CLIENT_MESSAGE,
        # Data frames bypass websockets' extensions (see RealtimeWebSocketProtocol); quote
        # frames are a few hundred bytes, and the gateway does not ask for compression.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        backlog=4096,
    )
    sock = listening_socket(settings.host, settings.port, settings.socket_send_buffer)
    RealtimeServer(config, app).run(sockets=[sock])
