"""The gateway's app factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.config import GatewaySettings
from gateway.edge import edge_extension
from gateway.routes import proxy_router, router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app

NAME = "gateway"
SCHEMA = "identity"


def migrations() -> list[Migration]:
    """The identity schema's migrations, then the shared outbox's."""
    return load_migrations("gateway.migrations") + load_migrations(
        "shared.messaging.migrations", source="outbox"
    )


def create_app(settings: GatewaySettings) -> FastAPI:
    app = create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router, proxy_router],  # the catch-all proxy last
        title="Bourse",
        description="Self-hostable backend for stock-investment analysis.",
        extensions=[edge_extension(settings)],
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID"],
        )
    return app
