"""Step 5 for WebSocket handshakes: ``/api/v1/ws/...`` on the gateway relayed to the same
path on realtime (steps 1-4 ran in :mod:`gateway.pipeline.full_stack`).

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
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
from starlette.types import Receive, Scope, Send

from gateway.authn import credentials_from_headers
from shared.errors import (
    AppError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UpstreamError,
    error_body,
)

if TYPE_CHECKING:  # the edge builds the sessions with :func:`refused_handshake`
    from gateway.authn import Principal
    from gateway.edge import Edge
    from gateway.policy import Rule

logger = logging.getLogger("gateway.websocket")

CREDENTIAL_PARAMS = frozenset({"access_token", "api_key"})
_UNSENDABLE = {1005: 1000, 1006: 1001, 1015: 1001}  # reserved codes, never on the wire
_BAD_GATEWAY = 1014
_MAX_MESSAGE = 4 * 1024 * 1024
_MAX_REFUSAL_BODY = 64 * 1024


def handshake_credentials(scope: Scope) -> tuple[tuple[str | None, str | None], str]:
    """A handshake's (token, API key), from its headers or else its query, and the
    query without them."""
    token, api_key = credentials_from_headers(scope["headers"])
    query_token, query_key, query = query_credentials(scope.get("query_string", b""))
    return (token or query_token, api_key or query_key), query


async def relay_handshake(
    edge: Edge,
    rule: Rule,
    principal: Principal | None,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    query: str,
    request_id: str,
    client_ip: str | None,
) -> None:
    """Relay an admitted handshake to its upstream; raises the refusal (the service's
    own 4xx as it is, 503 when it cannot be reached) before anything was accepted."""
    assert rule.upstream is not None
    upstream = edge.upstreams[rule.upstream]
    assert upstream.session is not None
    url = upstream.ws_base_url + scope["path"] + ("?" + query if query else "")
    headers = {"X-Request-ID": request_id}
    if principal is not None:
        headers["Authorization"] = "Bearer " + principal.token
    if client_ip:
        headers["X-Forwarded-For"] = client_ip
    try:
        await relay(scope, receive, send, session=upstream.session, url=url, headers=headers)
    except UpstreamRefused as refused:
        raise _refusal(refused, upstream.name) from None
    except OSError as exc:  # aiohttp's connection errors are OSErrors
        logger.warning("realtime websocket unreachable: %s", exc)
        raise ServiceUnavailableError(
            f"The {upstream.name} service is unavailable.",
            details={"service": upstream.name},
        ) from None


class ServiceRefusal(AppError):
    """A service's own refusal of a WebSocket handshake (a 4xx in the envelope), passed
    on to the client with its status, code, message and details."""

    def __init__(self, status: int, envelope: dict[str, Any]) -> None:
        details = envelope.get("details")
        super().__init__(
            str(envelope.get("message") or self.default_message),
            details=details if isinstance(details, dict | list) else {},
        )
        self.status_code = status  # type: ignore[misc]  # the service's, per instance
        self.error_code = str(envelope["error_code"])  # type: ignore[misc]


_REFUSALS: dict[int, type[AppError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def _refusal(refused: UpstreamRefused, service: str) -> AppError:
    """The upstream refused the handshake: a 4xx it explained reaches the client as it
    is; otherwise the meaning of its status is passed on."""
    if 400 <= refused.status < 500 and refused.envelope is not None:
        return ServiceRefusal(refused.status, refused.envelope)
    error_class = _REFUSALS.get(refused.status, UpstreamError)
    return error_class(
        f"The {service} service refused the connection.",
        details={"service": service, "status": refused.status},
    )


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
    Raises :class:`UpstreamRefused` (before accepting) if upstream refuses."""
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
    """The upstream refused the WebSocket handshake with ``status``; ``envelope`` is its
    error body when it sent one in the common envelope."""

    def __init__(self, status: int, envelope: dict[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.envelope = envelope


async def refused_handshake(response: aiohttp.ClientResponse) -> None:
    """The session's ``raise_for_status``: a refused WebSocket handshake raises
    :class:`UpstreamRefused` with the service's error body, read before aiohttp drops it
    (its own handshake error keeps only the status). Other requests on the session (health
    probes, OpenAPI fetches) read their statuses themselves and pass through."""
    if response.status < 400 or response.request_info.headers.get("Upgrade") != "websocket":
        return
    envelope = None
    if (response.content_length or 0) <= _MAX_REFUSAL_BODY:  # an envelope is small
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            body = orjson.loads(await response.read())
            if isinstance(body, dict) and isinstance(body.get("error_code"), str):
                envelope = body
    response.release()
    raise UpstreamRefused(response.status, envelope)
