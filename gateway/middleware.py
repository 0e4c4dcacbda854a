"""The edge as plain ASGI middleware: every ``/api/v1`` request and WebSocket handshake
goes through :class:`EdgeMiddleware` before anything else of the gateway.

For each one, in this order:

1. the route's rule (:mod:`gateway.policy`): none -> 404 (405 for a known path);
2. the credential (bearer token or API key) -> :class:`gateway.authn.Principal`, unless
   the route is public; missing or bad -> 401;
3. the rate limit: the principal's bucket of the route's class, or the client IP's
   ``public`` bucket for anonymous calls and failed authentications; refused -> 429 with
   ``Retry-After``. Every answer carries ``RateLimit-Policy`` and ``RateLimit``;
4. the role and, for an API key, its scope -> 403;
5. a service's route is forwarded (:mod:`gateway.proxy`, :mod:`gateway.websocket`);
   the gateway's own routes continue into FastAPI, with the principal in
   ``request.state.principal``.

It is plain ASGI (no ``BaseHTTPMiddleware``, no Request objects on the hot path) because
it runs on every request: see docs/performance.md.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.authn import Principal, credentials_from_headers
from gateway.edge import Edge
from gateway.limits import Decision
from gateway.policy import PREFIX, NoRoute, Rule
from gateway.proxy import forward
from gateway.websocket import UpstreamRefused, deny, query_credentials, relay
from shared.auth import roles_reach
from shared.errors import (
    AppError,
    AuthenticationError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UpstreamError,
    error_body,
)

logger = logging.getLogger("gateway.edge")

_API = PREFIX + "/"


class MethodNotAllowedError(AppError):
    status_code = 405
    error_code = "METHOD_NOT_ALLOWED"
    default_message = "This method is not allowed here."


class UpgradeRequiredError(AppError):
    status_code = 426
    error_code = "UPGRADE_REQUIRED"
    default_message = "This is a WebSocket endpoint."


def _no_route(path: str, exc: NoRoute) -> AppError:
    if exc.allowed:
        return MethodNotAllowedError(headers={"Allow": ", ".join(exc.allowed)})
    return NotFoundError(f"No route for {path}.")


def _unsafe_path(path: str) -> bool:
    # Dot segments or empty segments could be normalised differently by the service
    # than by our policy match: refuse them rather than guess.
    return "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/.."))


def _authorize(rule: Rule, principal: Principal) -> None:
    if rule.access != "public" and not roles_reach(principal.roles, rule.access):
        raise PermissionDeniedError(f"This requires the {rule.access} role.")
    if principal.api_key_id is not None:
        if not rule.api_keys:
            raise PermissionDeniedError("API keys cannot be used here; log in instead.")
        if rule.scope not in principal.scopes:
            raise PermissionDeniedError(f"This API key lacks the {rule.scope} scope.")


async def send_error(
    send: Send, error: AppError, request_id: str | None, extra: list[tuple[bytes, bytes]]
) -> None:
    body = orjson.dumps(error_body(error.error_code, error.message, error.details, request_id))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(extra)
    headers.extend((k.lower().encode(), v.encode()) for k, v in error.headers.items())
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _limit(
    edge: Edge, rule_class: str, principal: Principal | None, client_ip: str | None
) -> Decision | None:
    if edge.limiter is None:
        return None
    if principal is None or rule_class == "public":
        quota = edge.quotas["public"]
        key = edge.limiter.key("public", "ip", client_ip or "unknown")
    else:
        quota = edge.quotas[rule_class]
        key = edge.limiter.key(rule_class, principal.rate_key)
    return await edge.limiter.check([key], [quota])


async def admit(
    edge: Edge,
    method: str,
    path: str,
    token: str | None,
    api_key: str | None,
    client_ip: str | None,
    headers_out: list[tuple[bytes, bytes]],
    *,
    websocket: bool,
) -> tuple[Rule, Principal | None]:
    """Steps 1-4 of the module docstring; raises the refusal. Rate-limit headers are
    appended to ``headers_out`` as soon as they are known."""
    try:
        rule = edge.policy.match(method, path)
    except NoRoute as exc:
        decision = await _limit(edge, "public", None, client_ip)
        if decision is not None:
            headers_out.extend(decision.headers)
        raise _no_route(path, exc) from None
    if rule.websocket != websocket:
        if websocket:
            raise NotFoundError(f"No WebSocket at {path}.")
        raise UpgradeRequiredError(headers={"Upgrade": "websocket"})
    principal = await admit_rule(edge, rule, token, api_key, client_ip, headers_out)
    return rule, principal


async def admit_rule(
    edge: Edge,
    rule: Rule,
    token: str | None,
    api_key: str | None,
    client_ip: str | None,
    headers_out: list[tuple[bytes, bytes]],
) -> Principal | None:
    """Steps 2-4 for a matched ``rule``: the caller, charged and authorized."""
    principal = None
    if rule.access != "public":
        try:
            principal = await edge.authenticator.authenticate(token, api_key)
            if principal is None:
                raise AuthenticationError("A bearer token or an API key is required.")
        except AuthenticationError:
            # Failed authentications spend the client IP's public budget: guessing
            # credentials costs the guesser, not the database.
            decision = await _limit(edge, "public", None, client_ip)
            if decision is not None:
                headers_out.extend(decision.headers)
                if not decision.allowed:
                    raise RateLimitedError(details=_limit_details(decision)) from None
            raise
    if rule.rate_class != "login":  # the login route charges failures itself
        decision = await _limit(edge, rule.rate_class, principal, client_ip)
        if decision is not None:
            headers_out.extend(decision.headers)
            if not decision.allowed:
                raise RateLimitedError(details=_limit_details(decision))
    if principal is not None:
        _authorize(rule, principal)
    return principal


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
        headers_out: list[tuple[bytes, bytes]] = []
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if headers_out:
                    message["headers"] = [*message.get("headers", ()), *headers_out]
            await send(message)

        try:
            path: str = scope["path"]
            if _unsafe_path(path):
                raise NotFoundError(f"No route for {path}.")
            token, api_key = credentials_from_headers(scope["headers"])
            rule, principal = await admit(
                edge,
                scope["method"],
                path,
                token,
                api_key,
                client_ip,
                headers_out,
                websocket=False,
            )
            max_body = rule.max_body_bytes or edge.settings.max_body_bytes
            if rule.upstream is not None:
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
            path: str = scope["path"]
            if _unsafe_path(path):
                raise NotFoundError(f"No route for {path}.")
            token, api_key = credentials_from_headers(scope["headers"])
            query_token, query_key, query = query_credentials(scope.get("query_string", b""))
            token = token or query_token
            api_key = api_key or query_key
            rule, principal = await admit(
                edge, "GET", path, token, api_key, client_ip, [], websocket=True
            )
            assert rule.upstream is not None
            upstream = edge.upstreams[rule.upstream]
            assert upstream.session is not None
            url = upstream.ws_base_url + path + ("?" + query if query else "")
            headers = {"X-Request-ID": request_id}
            if principal is not None:
                headers["Authorization"] = "Bearer " + principal.token
            if client_ip:
                headers["X-Forwarded-For"] = client_ip
            try:
                await relay(
                    scope, receive, send, session=upstream.session, url=url, headers=headers
                )
            except UpstreamRefused as refused:
                raise _refusal(refused, upstream.name) from None
            except OSError as exc:  # aiohttp's connection errors are OSErrors
                logger.warning("realtime websocket unreachable: %s", exc)
                raise ServiceUnavailableError(
                    f"The {upstream.name} service is unavailable.",
                    details={"service": upstream.name},
                ) from None
        except AppError as error:
            await deny(scope, receive, send, error)


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


def _limit_details(decision: Decision) -> dict[str, Any]:
    return {
        "policy": decision.quota.name,
        "limit": decision.quota.limit,
        "window_seconds": decision.quota.period_seconds,
        "retry_after_seconds": decision.retry_after_seconds,
    }


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


class SecurityHeadersMiddleware:
    """Headers that make API responses safe to meet in a browser. The Swagger UI page
    needs scripts and styles, so it gets no content security policy."""

    _COMMON = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )
    _API_ONLY = ((b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),)

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        extra = []
        if hsts_seconds:
            extra.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_seconds}; includeSubDomains".encode(),
                )
            )
        self._docs_headers = [*self._COMMON, *extra]
        self.api_headers = [*self._COMMON, *self._API_ONLY, *extra]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = self._docs_headers if scope["path"] == "/docs" else self.api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class GzipWhenAccepted(GZipMiddleware):
    """Starlette's gzip, stepping aside entirely for clients that do not accept gzip
    (Starlette wraps every response in a pass-through responder otherwise: one more
    layer per request for API clients that never compress)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value:
                    await super().__call__(scope, receive, send)
                    return
        await self.app(scope, receive, send)
