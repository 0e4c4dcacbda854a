"""The gateway's app factory.

In front of everything, :mod:`gateway.pipeline.forwarded` serves forwarded requests,
step by step in one function (the map of the steps is :mod:`gateway.pipeline`).
Everything else takes FastAPI's stack, outermost first: request id and access log
(shared) -> security headers -> CORS (when configured) -> gzip -> the same steps as
middleware (:mod:`gateway.pipeline.full_stack`) -> the gateway's own routes. The server
reads request heads through :mod:`gateway.pipeline.wire` (:func:`http_protocol`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from gateway.config import GatewaySettings
from gateway.edge import edge_extension
from gateway.identity.passwords import PasswordSlots
from gateway.identity.routes import router as identity_router
from gateway.pipeline import forwarded
from gateway.pipeline.full_stack import EdgeMiddleware
from gateway.pipeline.respond import GzipWhenAccepted, SecurityHeadersMiddleware
from gateway.pipeline.wire import GatewayHttpProtocol, HeadLimits, protocol_class
from gateway.routes import outside_router, router
from gateway.webpages import ConsoleFiles, swagger_ui
from gateway.webpages import router as pages_router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app

NAME = "gateway"
SCHEMA = "identity"
_DEFAULT_DOC_ROUTES = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def migrations() -> list[Migration]:
    """The identity schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("gateway.migrations")
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def http_protocol(settings: GatewaySettings) -> type[GatewayHttpProtocol]:
    """The HTTP protocol the gateway is served with: uvicorn's, with bounded heads."""
    return protocol_class(
        HeadLimits(
            line_bytes=settings.max_header_line_bytes,
            head_bytes=settings.max_header_bytes,
            count=settings.max_header_count,
            url_bytes=settings.max_url_bytes,
        )
    )


def create_app(settings: GatewaySettings) -> FastAPI:
    app = create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[identity_router, router, outside_router, pages_router],
        title="Bourse",
        description="Self-hostable backend for stock-investment analysis.",
        extensions=[edge_extension(settings)],
        # Forwarding with a bearer token needs none of PostgreSQL, Redis or NATS; the
        # routes that do need one answer 503 on their own (docs/architecture.md, Health).
        ready_requires=(),
    )
    app.state.console_files = ConsoleFiles.load()  # the console and /docs (docs/console.md)
    app.state.password_slots = PasswordSlots(
        settings.password_hash_concurrency, settings.password_hash_wait_seconds
    )
    # The platform's document (merged with the services') and the gateway's own pages
    # (gateway/webpages.py) replace FastAPI's defaults.
    app.router.routes = [
        r
        for r in app.router.routes
        if getattr(r, "path", None) not in _DEFAULT_DOC_ROUTES
        or getattr(r, "endpoint", None) is swagger_ui
    ]
    app.docs_url = app.redoc_url = None
    # Appended after the shared RequestContextMiddleware, so each sits inside it.
    app.user_middleware.append(
        Middleware(SecurityHeadersMiddleware, hsts_seconds=settings.hsts_seconds)
    )
    if settings.cors_origins:
        app.user_middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-Request-ID",
                    "X-API-Key",
                    "Idempotency-Key",
                    "If-Match",
                ],
                # ETag (for If-Match) and Idempotent-Replayed: portfolio's concurrency and
                # idempotency answers, which a browser client must be able to read.
                expose_headers=[
                    "X-Request-ID",
                    "RateLimit",
                    "RateLimit-Policy",
                    "Retry-After",
                    "ETag",
                    "Idempotent-Replayed",
                ],
                max_age=600,
            )
        )
    app.user_middleware.append(Middleware(GzipWhenAccepted, minimum_size=1024))
    app.user_middleware.append(Middleware(EdgeMiddleware))
    forwarded.install(
        app, service=NAME, hsts_seconds=settings.hsts_seconds, cors=bool(settings.cors_origins)
    )
    return app
