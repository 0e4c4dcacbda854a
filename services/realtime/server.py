"""Serving the realtime service: uvicorn, with sockets told to reconnect on shutdown.

On SIGTERM uvicorn stops accepting, then closes every WebSocket with 1012 itself and only
afterwards runs the lifespan's shutdown. A stream client should hear 1001 ("going away":
reconnect, to another node), so this server closes our sockets first: stop accepting ->
close every socket with 1001 -> uvicorn's shutdown -> lifespan exit (stop the streams,
then drain NATS).
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from fastapi import FastAPI

from services.realtime.app import NAME, create_app
from services.realtime.config import RealtimeSettings
from shared.log import configure_logging
from shared.settings import SettingsError, load_settings

MAX_CLIENT_MESSAGE = 64 * 1024  # bytes: the largest client frame (a subscribe of 1,000 tickers)


class RealtimeServer(uvicorn.Server):
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
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=MAX_CLIENT_MESSAGE,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        backlog=4096,
    )
    sock = listening_socket(settings.host, settings.port, settings.socket_send_buffer)
    RealtimeServer(config, app).run(sockets=[sock])
