"""A forwarded request, top to bottom: the gateway's outermost ASGI callable.

Every step is a function in its own module of this package::

    0. the head, bounded            wire.py        (the HTTP protocol, before this code)
    1. the route's rule             route.py       match_route       none: full stack
    2. who is calling               identify.py    identify          bad: 401
    3. the rate limit               rate_limit.py  charge            over: 429
    4. may they                     authorize.py   authorize         no: 403
    5. forward to the service       forward.py     forward           (over pool.py)
       answers leave through        respond.py     request id, security headers, gzip;
                                                   refusals in the envelope

A request that step 1 does not claim takes the full stack instead
(:mod:`gateway.pipeline.full_stack`, then FastAPI): the gateway's own routes, requests
without a rule (404/405), WebSocket handshakes, and, when CORS is configured, requests
with an ``Origin`` header. The full stack runs the same steps 1-4 as middleware. The
forwarded path is one function with one ``send`` wrapper, without FastAPI's layers and
Starlette's routing: on this path those cost about a tenth of the gateway's CPU
(docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.edge import Edge
from gateway.pipeline.authorize import authorize
from gateway.pipeline.forward import forward
from gateway.pipeline.identify import identify, request_credentials
from gateway.pipeline.rate_limit import charge
from gateway.pipeline.respond import GzipWhenAccepted, SecurityHeadersMiddleware, send_error
from gateway.pipeline.route import match_route
from gateway.policy import PREFIX, NoRoute, Rule
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
        self.gzip = GzipWhenAccepted(self.serve, minimum_size=1024)
        self._edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._forwarded_rule(scope)  # 1. the route's rule
        if rule is None:
            await self.stack(scope, receive, send)
            return
        scope[_RULE_KEY] = rule
        scope["route"] = rule  # its ``path`` is the template metrics are kept by
        await self.gzip(scope, receive, send)  # then ``serve``

    def _forwarded_rule(self, scope: Scope) -> Rule | None:
        """Step 1 for the forwarded path: the rule, if it is a service's HTTP route."""
        if scope["type"] != "http" or not scope["path"].startswith(_API):
            return None
        edge = self._edge
        if edge is None:
            edge = self._edge = self.app.state.edge
        try:
            rule = match_route(edge.policy, scope["method"], scope["path"])
        except NoRoute:
            return None  # refused by the full stack, with the rate-limit headers
        if rule.upstream is None or rule.websocket:
            return None
        if self.cors:
            for name, _ in scope["headers"]:
                if name == b"origin":
                    return None  # CORS answers those in the full stack
        return rule

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Steps 2-5 for a request step 1 claimed; see the module docstring."""
        started = time.perf_counter()
        rule: Rule = scope[_RULE_KEY]
        edge = self._edge
        assert edge is not None and rule.upstream is not None
        request_id = bind_request_id(scope)
        client_ip = edge.client_ip(scope)
        # Security headers, the request id, then the rate-limit headers as steps add them.
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
                credentials = request_credentials(scope["headers"])
                principal = await identify(edge, rule, credentials, client_ip, added)  # 2.
                await charge(edge, rule, principal, client_ip, added)  # 3.
                authorize(rule, principal)  # 4.
                await forward(  # 5.
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
