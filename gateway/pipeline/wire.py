"""Step 0 of a request: its head off the wire, bounded, and refused in the envelope.

uvicorn's httptools protocol puts no bound on a request's head (a 4 MB header and 20,000
headers were accepted, held in memory, and handed to the app) and answers a request it
cannot parse with a ``text/plain`` 400. :class:`GatewayHttpProtocol` is that protocol
with the gateway's limits applied while the head is parsed, before the app sees it:

- a header line (name, ``: ``, value) over ``line_bytes``, a head over ``head_bytes``
  or more than ``count`` headers: ``431 REQUEST_HEADERS_TOO_LARGE``;
- a request target over ``url_bytes``: ``414 URI_TOO_LONG``;
- a method the parser does not know: ``501 METHOD_NOT_IMPLEMENTED`` (RFC 9110 9.1);
- anything else that is not HTTP/1.1: ``400 MALFORMED_REQUEST``;

each in the common envelope with a request id, and the connection closed (after a
broken head nothing on it can be framed). The head is counted as it arrives, so a head
that never ends is cut off at ``head_bytes`` plus one read, not buffered whole. After a
refusal the connection lingers (what the client still sends is read and dropped, up to
``_LINGER_BYTES`` or ``_LINGER_SECONDS``): closed at once with unread bytes, the kernel
would reset it, and a client still sending its 4 MB header would lose the answer.

WebSocket handshakes go on to :class:`GatewayWebSocketProtocol`: uvicorn's sans-I/O
WebSocket protocol, which logs ``ERROR ASGI callable returned without completing
handshake`` after every refused handshake (a 401 answered with the denial-response
extension); the subclass records that a denial completes the handshake.

What stays out of reach: a client that sends nothing is closed by uvicorn's own
timeouts, and TLS is terminated in front of the gateway. This relies on uvicorn's
``HttpToolsProtocol`` internals (``data_received``, ``send_400_response`` and the parser
callbacks); ``gateway/tests/test_wire.py`` fails if they change.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
import orjson
from starlette.types import Message
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from shared.errors import error_body
from shared.http import next_request_id


@dataclass(frozen=True)
class HeadLimits:
    line_bytes: int = 8 * 1024
    head_bytes: int = 64 * 1024
    count: int = 100
    url_bytes: int = 8 * 1024


_LINGER_BYTES = 16 * 1024 * 1024
_LINGER_SECONDS = 2.0


class _Refused(Exception):
    """Raised from a parser callback; httptools passes it on as a parse error."""


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, quiet about refused handshakes."""

    async def send(self, message: Message) -> None:  # type: ignore[override]
        await super().send(message)  # type: ignore[arg-type]
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True  # the denial response was the handshake's end


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded heads; see the module docstring."""

    limits = HeadLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ws_protocol_class = GatewayWebSocketProtocol
        self._in_head = True  # waiting for, or reading, a request head
        self._head_seen = 0  # bytes received while in a head
        self._refusal: tuple[int, str, str, dict[str, Any]] | None = None
        self._lingering = 0  # after a refusal: 1 + the bytes dropped since

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingering += len(data)
            if self._lingering > _LINGER_BYTES:
                self.transport.abort()
            return
        if self._in_head:
            self._head_seen += len(data)
        super().data_received(data)
        if (
            self._in_head
            and self._head_seen > self.limits.head_bytes
            and not self.transport.is_closing()
        ):
            # Still no end of the head after more than the limit: refused now rather
            # than buffered until the parser sees a whole header.
            self._refuse_now()

    def on_headers_complete(self) -> None:
        # Checked here, once per request, rather than in ``on_url`` and ``on_header``:
        # a Python call per piece costs more. The head's size was bounded as it arrived
        # (a target too long even for that is a 431).
        self._in_head = False
        self._head_seen = 0
        limits = self.limits
        if len(self.url) > limits.url_bytes:
            self._refusal = (
                414,
                "URI_TOO_LONG",
                "The request target is too long.",
                {"max_bytes": limits.url_bytes},
            )
            raise _Refused
        headers = self.headers
        if len(headers) > limits.count:
            self._set_431("count", limits.count)
        total = 0
        for name, value in headers:
            line = len(name) + len(value) + 4
            if line > limits.line_bytes:
                self._set_431("line_bytes", limits.line_bytes)
            total += line
        if total > limits.head_bytes:
            self._set_431("head_bytes", limits.head_bytes)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_seen = 0

    def _set_431(self, limit: str, value: int) -> None:
        self._refusal = (
            431,
            "REQUEST_HEADERS_TOO_LARGE",
            "The request's headers are too large.",
            {"limit": limit, "max": value},
        )
        raise _Refused

    def _refuse_now(self) -> None:
        self._refusal = (
            431,
            "REQUEST_HEADERS_TOO_LARGE",
            "The request's headers are too large.",
            {"limit": "head_bytes", "max": self.limits.head_bytes},
        )
        self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this for every head it cannot parse: answer in the envelope,
        with the status that says why, and close."""
        if self._refusal is not None:
            status, code, message, details = self._refusal
        elif isinstance(sys.exc_info()[1], httptools.HttpParserInvalidMethodError):
            status, code, message, details = (
                501,
                "METHOD_NOT_IMPLEMENTED",
                "The request method is not known.",
                {},
            )
        else:
            status, code, message, details = (
                400,
                "MALFORMED_REQUEST",
                "The request is not valid HTTP/1.1.",
                {},
            )
        request_id = next_request_id()
        body = orjson.dumps(error_body(code, message, details, request_id))
        head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head += (
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"x-request-id: " + request_id.encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
            body,
        )
        transport = self.transport
        transport.write(b"".join(head))
        if transport.can_write_eof():
            transport.write_eof()
            self._lingering = 1
            loop = asyncio.get_running_loop()
            loop.call_later(_LINGER_SECONDS, transport.close)
        else:
            transport.close()


def protocol_class(limits: HeadLimits) -> type[GatewayHttpProtocol]:
    """:class:`GatewayHttpProtocol` with ``limits``, for ``uvicorn.Config(http=...)``."""
    return type("GatewayHttpProtocol", (GatewayHttpProtocol,), {"limits": limits})
