"""The recommendations service's app factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.recommendations import events
from services.recommendations.config import RecommendationsSettings
from services.recommendations.routes import router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app, outbox_relay

NAME = "recommendations"
SCHEMA = "recommendations"


def migrations() -> list[Migration]:
    """The recommendations schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("services.recommendations.migrations")
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def create_app(settings: RecommendationsSettings) -> FastAPI:
    return create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router],
        title="Bourse recommendations service",
        description="Daily BUY/HOLD/SELL recommendations with disclosures.",
        extensions=[outbox_relay(events.STREAM, events.STREAM_SUBJECTS)],
    )
