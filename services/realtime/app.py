"""The realtime service's app factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.realtime.config import RealtimeSettings
from services.realtime.routes import router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app

NAME = "realtime"
SCHEMA = "realtime"


def migrations() -> list[Migration]:
    """The realtime schema's migrations, then the shared outbox's."""
    return load_migrations("services.realtime.migrations") + load_migrations(
        "shared.messaging.migrations", source="outbox"
    )


def create_app(settings: RealtimeSettings) -> FastAPI:
    return create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router],
        title="Bourse realtime service",
        description="Live price and alert streams; alert rules.",
    )
