"""The FastAPI app every part builds on: error envelope, request ids, access logs,
Prometheus metrics, ``/live``, ``/ready`` and ``/metrics``, the refusal of input the
database could never store (:mod:`shared.inputs`) on every route, and routing where
literal path segments beat parameters, a wrong method is a 405 whose ``Allow`` lists
every method of the path, and ``HEAD`` is served wherever ``GET`` is."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.context import REQUEST_ID_HEADER, accept_request_id, set_request_id
from shared.db.transaction import DATABASE_ERRORS
from shared.errors import MethodNotAllowedError, install_error_handlers
from shared.health import Outages, health_router
from shared.inputs import check_storable_input
from shared.messaging.bus import MESSAGING_ERRORS
from shared.redis import REDIS_ERRORS

access_log = logging.getLogger("access")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_QUIET_PATHS = frozenset({"/live", "/ready", "/metrics"})
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()

# FastAPI's native OpenTelemetry hooks, off: the platform exports Prometheus metrics and
# JSON logs, and with the hooks on every request asks OpenTelemetry for its global
# providers (which reads ``os.environ``): about a tenth of the gateway's CPU per request,
# measured with py-spy (docs/performance.md).
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# Fresh request ids: 16 random hex characters per process, then a 16-hex counter. As
# unique as ``uuid4().hex`` across processes in practice, same shape (32 hex characters),
# without a ``urandom`` call and a UUID object per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def next_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def bind_request_id(scope: Scope) -> str:
    """The request's id (from ``X-Request-ID`` when well formed, else a fresh one), bound
    to the current task and stored in ``scope["state"]["request_id"]``."""
    request_id = None
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_HEADER_BYTES:
            request_id = accept_request_id(value.decode("latin-1"))
            break
    if request_id is None:
        request_id = next_request_id()
    set_request_id(request_id)
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


class RequestRecorder:
    """Metrics and the access line of one service's answered requests. The metric
    children are looked up once per (method, route, status), not on every request."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(self, method: str, template: str, path: str, status: int, elapsed: float) -> None:
        """Count and time the request by route template; log it unless it is a probe."""
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(self.service, method, template, str(status)),
                HTTP_LATENCY.labels(self.service, method, template),
            )
            if len(self._children) < 10_000:  # templates, not paths: small in practice
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if path not in _QUIET_PATHS and access_log.isEnabledFor(logging.INFO):
            duration_ms = elapsed * 1000
            # makeRecord + handle: what Logger.info does, without looking for the caller's
            # file and line (a stack walk per request) that the JSON lines do not show.
            access_log.handle(
                access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s %.1fms",
                    (method, path, status, duration_ms),
                    None,
                    extra={"status": status, "duration_ms": round(duration_ms, 2)},
                )
            )


class RequestContextMiddleware:
    """Binds the request id (taken from ``X-Request-ID`` if well formed, else new),
    echoes it in the response, logs one access line and records metrics.

    A plain ASGI middleware: it adds no task switch and no body buffering.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self.recorder = RequestRecorder(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = bind_request_id(scope)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500
        id_header = (_REQUEST_ID_HEADER_BYTES, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name == _REQUEST_ID_HEADER_BYTES for name, _ in headers):
                    headers.append(id_header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.recorder.record(
                scope["method"], template, scope["path"], status, time.perf_counter() - started
            )


class LiteralFirstRouting:
    """In front of the router's own matching, for HTTP requests: among the routes
    whose path fits the request, only the most literal ones count (``/alerts/history``
    before ``/alerts/{rule_id}``: the router takes the first route that has the method,
    so ``PATCH /alerts/history`` reached ``/alerts/{rule_id}`` and failed validation).
    A method they lack is a 405 whose ``Allow`` lists all of theirs; ``HEAD`` runs their
    ``GET`` (the server sends no body). Everything else, and every request those routes
    can answer, goes to the router unchanged (404s, slash redirects, WebSockets).

    The route table is read at the first request, when every router is included.
    Between two routes of the most literal group that both have the method, the
    router's order decides: declare literal paths first, as FastAPI's docs ask."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.route = router.app
        self._table: list[tuple[re.Pattern[str], tuple[int, ...], frozenset[str]]] | None = None
        self._seen: dict[str, frozenset[str]] = {}  # paths matched recently

    def _routes(self) -> list[tuple[re.Pattern[str], tuple[int, ...], frozenset[str]]]:
        if self._table is None:
            table = []
            for context in iter_route_contexts(self.router.routes):
                path, methods = context.path, context.methods
                if path and methods:
                    regex, _, _ = compile_path(path)
                    table.append((regex, _literal_key(path), frozenset(methods)))
            self._table = table
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.route(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        methods = self._seen.get(path)
        if methods is None:
            methods = self._methods_for(path)
            if len(self._seen) >= 4096:
                self._seen.clear()  # bounded: paths carry ids, so the set of them is not
            self._seen[path] = methods
        method = scope["method"]
        if not methods or method in methods:
            await self.route(scope, receive, send)
        elif method == "HEAD" and "GET" in methods:
            # The route runs as GET; the server still sees HEAD and sends no body.
            await self.route({**scope, "method": "GET"}, receive, send)
        else:
            allowed = methods | {"HEAD"} if "GET" in methods else methods
            raise MethodNotAllowedError(headers={"Allow": ", ".join(sorted(allowed))})

    def _methods_for(self, path: str) -> frozenset[str]:
        """The methods of the most literal routes that fit ``path`` (empty: none fits)."""
        best: tuple[int, ...] | None = None
        methods: frozenset[str] = frozenset()
        for regex, key, route_methods in self._routes():
            if regex.match(path):
                if best is None or key > best:
                    best, methods = key, route_methods
                elif key == best:
                    methods |= route_methods
        return methods


def _literal_key(template: str) -> tuple[int, ...]:
    """Per segment, 1 for a literal and 0 for a parameter; compared from the left, the
    greater key is the more literal template."""
    return tuple(0 if "{" in segment else 1 for segment in template.split("/"))


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    name: str,
    title: str,
    version: str,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    description: str = "",
    telemetry: TelemetryConfig = NO_NATIVE_TELEMETRY,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with Bourse's common behaviour; ``routers`` carry the part's API.
    ``telemetry`` is FastAPI's native OpenTelemetry configuration: off by default (see
    :data:`NO_NATIVE_TELEMETRY`)."""
    # Every route, of every router included below, checks its raw input first.
    dependencies = [Depends(check_storable_input), *fastapi_kwargs.pop("dependencies", ())]
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        telemetry=telemetry,
        dependencies=dependencies,
        **fastapi_kwargs,
    )
    app.state.readiness_checks = {}
    # Closed by the part's lifespan (shared.runtime); the checks are looked up when needed.
    app.state.outages = Outages(lambda: app.state.readiness_checks)
    install_error_handlers(
        app,
        translators=(DATABASE_ERRORS, REDIS_ERRORS, MESSAGING_ERRORS),
    )
    app.add_middleware(RequestContextMiddleware, service=name)
    app.include_router(health_router())
    app.add_route("/metrics", _metrics, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    app.router.middleware_stack = LiteralFirstRouting(app.router)
    return app
