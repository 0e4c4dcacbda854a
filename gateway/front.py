"""The gateway's outermost ASGI callable: forwarded ``/api/v1`` requests are served here,
everything else goes through FastAPI.

A request to a service's route runs through the same steps as in the full stack (request
id, access line and metrics; security headers; gzip when accepted; route policy,
authentication, rate limit, authorization; forwarding), but as one function with one
``send`` wrapper, without FastAPI's built-in layers and Starlette's routing: on the
proxied path those cost about a tenth of the gateway's CPU (docs/performance.md).

Everything else takes the full stack (:func:`gateway.app.create_app`): the gateway's own
routes, unknown routes (404/405), unsafe paths, WebSocket handshakes, and, when CORS is
configured, requests with an ``Origin`` header (CORS answers those in the full stack).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.authn import credentials_from_headers
from gateway.edge import Edge
from gateway.middleware import (
    GzipWhenAccepted,
    SecurityHeadersMiddleware,
    _unsafe_path,
    admit_rule,
    send_error,
)
from gateway.policy import PREFIX, NoRoute, Rule
from gateway.proxy import forward
from shared.errors import AppError
from shared.http import RequestContextMiddleware, RequestRecorder, bind_request_id

logger = logging.getLogger("shared.errors")  # where the full stack logs unhandled errors

_API = PREFIX + "/"
_RULE_KEY = "gateway.rule"


class ProxyFront:
    """See the module docstring. ``stack`` is the app's full middleware stack."""

    def __init__(
        self, app: FastAPI, stack: ASGIApp, *, service: str, hsts_seconds: int, cors: bool
    ) -> None:
        self.app = app
        self.stack = stack
        self.cors = cors
        self.recorder = _recorder_of(stack) or RequestRecorder(service)
        self.security_headers = SecurityHeadersMiddleware(stack, hsts_seconds=hsts_seconds)
        self.gzip = GzipWhenAccepted(self._serve, minimum_size=1024)
        self._edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_API):
            rule = self._proxied_rule(scope)
            if rule is not None:
                scope[_RULE_KEY] = rule
                scope["route"] = rule  # its ``path`` is the template metrics are kept by
                await self.gzip(scope, receive, send)
                return
        await self.stack(scope, receive, send)

    def _proxied_rule(self, scope: Scope) -> Rule | None:
        edge = self._edge
        if edge is None:
            edge = self._edge = self.app.state.edge
        path: str = scope["path"]
        if _unsafe_path(path):
            return None
        try:
            rule = edge.policy.match(scope["method"], path)
        except NoRoute:
            return None
        if rule.upstream is None or rule.websocket:
            return None
        if self.cors:
            for name, _ in scope["headers"]:
                if name == b"origin":
                    return None
        return rule

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rule: Rule = scope[_RULE_KEY]
        edge = self._edge
        assert edge is not None
        request_id = bind_request_id(scope)
        client_ip = edge.client_ip(scope)
        added = [*self.security_headers.api_headers, (b"x-request-id", request_id.encode())]
        status = 500
        responded = False

        async def send_out(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                message["headers"].extend(added)
            await send(message)

        try:
            try:
                token, api_key = credentials_from_headers(scope["headers"])
                principal = await admit_rule(edge, rule, token, api_key, client_ip, added)
                assert rule.upstream is not None
                await forward(
                    edge.upstreams[rule.upstream],
                    scope,
                    receive,
                    send_out,
                    token=principal.token if principal is not None else None,
                    request_id=request_id,
                    client_ip=client_ip,
                    response_headers=[],
                    max_body_bytes=rule.max_body_bytes or edge.settings.max_body_bytes,
                )
            except AppError as error:
                if responded:
                    raise
                await send_error(send_out, error, request_id, [])
            except Exception:
                if responded:
                    raise  # the server cuts the answer short
                logger.exception("unhandled error")
                await send_error(send_out, AppError(), request_id, [])
        finally:
            self.recorder.record(
                scope["method"], rule.path, scope["path"], status, time.perf_counter() - started
            )


def _recorder_of(stack: Any) -> RequestRecorder | None:
    """The full stack's recorder, so both paths count into the same metric children."""
    app = stack
    for _ in range(10):
        if isinstance(app, RequestContextMiddleware):
            return app.recorder
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def install(app: FastAPI, *, service: str, hsts_seconds: int, cors: bool) -> None:
    """Put :class:`ProxyFront` in front of ``app``'s full middleware stack. Call last:
    Starlette refuses middleware added after the stack is built."""
    app.middleware_stack = ProxyFront(
        app, app.build_middleware_stack(), service=service, hsts_seconds=hsts_seconds, cors=cors
    )
