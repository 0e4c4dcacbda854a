"""The FastAPI app every part builds on: error envelope, request ids, access logs,
Prometheus metrics, ``/live``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.context import REQUEST_ID_HEADER, accept_request_id, set_request_id
from shared.errors import install_error_handlers
from shared.health import health_router

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


class RequestContextMiddleware:
    """Binds the request id (taken from ``X-Request-ID`` if well formed, else new),
    echoes it in the response, logs one access line and records metrics.

    A plain ASGI middleware: it adds no task switch and no body buffering.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER_BYTES:
                incoming = value.decode("latin-1")
                break
        request_id = accept_request_id(incoming)
        set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name == _REQUEST_ID_HEADER_BYTES for name, _ in headers):
                    headers.append((_REQUEST_ID_HEADER_BYTES, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(elapsed)
            path = scope["path"]
            if path not in _QUIET_PATHS:
                access_log.info(
                    "%s %s %s %.1fms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )


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
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with Bourse's common behaviour; ``routers`` carry the part's API."""
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        **fastapi_kwargs,
    )
    app.state.readiness_checks = {}
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=name)
    app.include_router(health_router())
    app.add_route("/metrics", _metrics, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app
