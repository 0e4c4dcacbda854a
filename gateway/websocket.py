"""WebSocket proxying: ``/api/v1/ws/...`` on the gateway to the same path on realtime.

The contract (docs/gateway.md):

- The client authenticates at the handshake with ``Authorization: Bearer <token>``, or
  ``?access_token=<jwt>`` (browsers cannot set headers), or an API key in ``X-API-Key`` /
  ``?api_key=``.
- A refused handshake is never upgraded: the client gets an HTTP error response (401,
  403, 404, 429 or 503) with the error envelope as its body. Servers without the ASGI
  denial-response extension fall back to closing with code ``4000 + status`` (4401...).
- Credentials are removed from the query. The upstream handshake carries
  ``Authorization: Bearer <token>``: the user's own access token, or for an API key a
  short-lived internal JWT with the same claims shape. It also carries ``X-Request-ID``
  and ``X-Forwarded-For``; the client's subprotocols are offered upstream and the one
  upstream picks is accepted.
- Text and binary frames are relayed both ways; a close from either side is passed on
  with its code and reason, and the other side is closed. An upstream that cannot be
  reached refuses the handshake with 503; one that fails mid-session closes the client
  with 1014 (bad gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
from starlette.types import Receive, Scope, Send

from shared.errors import AppError, error_body

logger = logging.getLogger("gateway.websocket")

CREDENTIAL_PARAMS = frozenset({"access_token", "api_key"})
_UNSENDABLE = {1005: 1000, 1006: 1001, 1015: 1001}  # reserved codes, never on the wire
_BAD_GATEWAY = 1014
_MAX_MESSAGE = 4 * 1024 * 1024


def query_credentials(query_string: bytes) -> tuple[str | None, str | None, str]:
    """``access_token`` and ``api_key`` from a query, and the query without them."""
    token = api_key = None
    kept = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "access_token":
            token = value
        elif name == "api_key":
            api_key = value
        else:
            kept.append((name, value))
    return token, api_key, urlencode(kept)


async def deny(scope: Scope, receive: Receive, send: Send, error: AppError) -> None:
    """Refuse a handshake without upgrading: an HTTP response with the envelope."""
    await receive()  # the websocket.connect message
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps(error_body(error.error_code, error.message, error.details))
        headers = [(b"content-type", b"application/json")]
        headers.extend((k.lower().encode(), v.encode()) for k, v in error.headers.items())
        await send(
            {
                "type": "websocket.http.response.start",
                "status": error.status_code,
                "headers": headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4000 + error.status_code})


def _sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _UNSENDABLE.get(code, code)


async def relay(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
) -> None:
    """Open ``url`` upstream, accept the client, and pump frames until either side closes.
    Raises :class:`ConnectionRefusedUpstream` (before accepting) if upstream refuses."""
    protocols = tuple(scope.get("subprotocols") or ())
    try:
        upstream = await session.ws_connect(
            url,
            headers=headers,
            protocols=protocols,
            autoclose=False,
            autoping=True,
            max_msg_size=_MAX_MESSAGE,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise UpstreamRefused(exc.status) from None
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        await upstream.close()
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.protocol, "headers": []})

    client_closed: dict[str, object] = {}

    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                if message.get("text") is not None:
                    await upstream.send_str(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send_bytes(message["bytes"])
            elif message["type"] == "websocket.disconnect":
                client_closed["code"] = message.get("code", 1000)
                await upstream.close(
                    code=_sendable(message.get("code")),
                    message=(message.get("reason") or "").encode(),
                )
                return

    async def upstream_to_client() -> None:
        while True:
            msg = await upstream.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                code = _sendable(msg.data)
                # Complete the closing handshake upstream, then pass the close on.
                await upstream.close(code=code)
                await send({"type": "websocket.close", "code": code, "reason": msg.extra or ""})
                return
            else:  # CLOSED, ERROR
                if client_closed:
                    return  # our own close, passing on the client's: the normal end
                logger.warning("upstream websocket failed: %s", msg.data)
                await send({"type": "websocket.close", "code": _BAD_GATEWAY, "reason": ""})
                return

    tasks = [
        asyncio.create_task(client_to_upstream()),
        asyncio.create_task(upstream_to_client()),
    ]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            failure = task.exception()
            if failure is not None and not isinstance(failure, OSError | RuntimeError):
                raise failure
    finally:
        for task in tasks:
            task.cancel()
        if not upstream.closed:
            await upstream.close()


class UpstreamRefused(Exception):
    """The upstream refused the WebSocket handshake with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
