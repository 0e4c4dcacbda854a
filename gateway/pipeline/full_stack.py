"""The pipeline's steps for the requests the forwarded path does not take: the gateway's
own routes, requests without a rule, and WebSocket handshakes. Plain ASGI middleware
inside FastAPI's stack (after the request id, security headers, CORS and gzip), for
every ``/api/v1`` request and handshake:

1. the route's rule (:mod:`.route`): none -> 404 (405 for a known path);
2. the caller (:mod:`.identify`) -> 401;
3. the rate limit (:mod:`.rate_limit`) -> 429;
4. the role and API-key scope (:mod:`.authorize`) -> 403;
5. a WebSocket handshake is relayed (:mod:`.websocket`); the gateway's own routes
   continue into FastAPI with the principal in ``request.state.principal`` and the body
   read, within its limit, before the app (413).

It is plain ASGI (no ``BaseHTTPMiddleware``, no Request objects) because it runs on
every request of the full stack: see docs/performance.md.
"""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.authn import Principal
from gateway.edge import Edge
from gateway.pipeline.authorize import authorize
from gateway.pipeline.forward import forward
from gateway.pipeline.identify import Credentials, identify, request_credentials
from gateway.pipeline.rate_limit import charge, charge_anonymous
from gateway.pipeline.respond import send_error
from gateway.pipeline.route import UpgradeRequiredError, match_route, no_route_error
from gateway.pipeline.websocket import deny, handshake_credentials, relay_handshake
from gateway.policy import PREFIX, NoRoute, Rule
from shared.errors import AppError, NotFoundError, PayloadTooLargeError, RateLimitedError

_API = PREFIX + "/"
Headers = list[tuple[bytes, bytes]]


async def admit(
    edge: Edge,
    method: str,
    path: str,
    credentials: Credentials,
    client_ip: str | None,
    headers_out: Headers,
    *,
    websocket: bool,
) -> tuple[Rule, Principal | None]:
    """Steps 1-4; raises the refusal. Rate-limit headers go to ``headers_out``."""
    try:
        rule = match_route(edge.policy, method, path)
    except NoRoute as exc:
        with contextlib.suppress(RateLimitedError):  # the 404 says more than a 429
            await charge_anonymous(edge, client_ip, headers_out)
        raise no_route_error(path, exc) from None
    if rule.websocket != websocket:
        if websocket:
            raise NotFoundError(f"No WebSocket at {path}.")
        raise UpgradeRequiredError(headers={"Upgrade": "websocket"})
    principal = await identify(edge, rule, credentials, client_ip, headers_out)
    await charge(edge, rule, principal, client_ip, headers_out)
    authorize(rule, principal)
    return rule, principal


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" or not scope["path"].startswith(_API):
            await self.app(scope, receive, send)
            return
        edge: Edge = scope["app"].state.edge
        if kind == "websocket":
            await self._websocket(edge, scope, receive, send)
        else:
            await self._http(edge, scope, receive, send)

    async def _http(self, edge: Edge, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        request_id: str = state.get("request_id", "")
        client_ip = edge.client_ip(scope)
        headers_out: Headers = []
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if headers_out:
                    message["headers"] = [*message.get("headers", ()), *headers_out]
            await send(message)

        try:
            credentials = request_credentials(scope["headers"])
            rule, principal = await admit(
                edge, scope["method"], scope["path"], credentials, client_ip, headers_out,
                websocket=False,
            )  # fmt: skip
            max_body = rule.max_body_bytes or edge.settings.max_body_bytes
            if rule.upstream is not None:  # forwarded, from the full stack (CORS requests)
                scope["route"] = rule  # its ``path`` is the template metrics are kept by
                await forward(
                    edge.upstreams[rule.upstream],
                    scope,
                    receive,
                    send_tracking,
                    token=principal.token if principal is not None else None,
                    request_id=request_id,
                    client_ip=client_ip,
                    response_headers=[],
                    max_body_bytes=max_body,
                )
                return
            state["principal"] = principal
            state["client_ip"] = client_ip
            await self.app(scope, await _body_within(scope, receive, max_body), send_tracking)
        except AppError as error:
            if started:
                raise
            await send_error(send, error, request_id, headers_out)

    async def _websocket(self, edge: Edge, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        request_id: str = state.get("request_id", "")
        client_ip = edge.client_ip(scope)
        try:
            credentials, query = handshake_credentials(scope)
            rule, principal = await admit(
                edge, "GET", scope["path"], credentials, client_ip, [], websocket=True
            )
            await relay_handshake(
                edge, rule, principal, scope, receive, send,
                query=query, request_id=request_id, client_ip=client_ip,
            )  # fmt: skip
        except AppError as error:
            await deny(scope, receive, send, error)


async def _body_within(scope: Scope, receive: Receive, max_bytes: int) -> Receive:
    """The request body read whole (the gateway's own routes take small JSON or form
    bodies), refused with 413 as soon as it passes ``max_bytes``, and replayed to the
    app. Read here, not inside the app: an error raised while FastAPI reads the body
    becomes its generic 400."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_bytes})
    chunks = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: the app sees it in its turn
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > max_bytes:
            raise PayloadTooLargeError(details={"max_bytes": max_bytes})
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    replay: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def replayed() -> Message:
        nonlocal replay
        if replay is not None:
            message, replay = replay, None
            return message
        return await receive()

    return replayed
