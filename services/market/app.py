"""The market service's app factory."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from services.market import background
from services.market.cached_reads import CachedReads
from services.market.config import MarketSettings
from services.market.routes import router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app

NAME = "market"
SCHEMA = "market"


# 0002 was fixed in its TimescaleDB branch only (it could not find the extension's functions,
# so it never applied with the extension): databases that applied the first text, all on the
# native path, hold exactly what the fixed text builds.
_PREVIOUS_CHECKSUMS = {
    2: frozenset({"781b2b07c519e571ad56d0e2cdb9fddcb2c5bf5528e12cc7d490f0717de92fc6"}),
}


def migrations() -> list[Migration]:
    """The market schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("services.market.migrations", previous_checksums=_PREVIOUS_CHECKSUMS)
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def create_app(settings: MarketSettings) -> FastAPI:
    app = create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router],
        title="Bourse market service",
        description="Securities, daily history, live quotes, analysis, market overview.",
        extensions=[
            background.token_cache(settings),
            background.response_cache(),
            background.outbox(),
            background.universe_loader(settings),
            background.rpc(),
            background.live_feed(settings),
            background.model_view(settings),
        ],
    )
    app.state.cached_routes = {}
    # Innermost user middleware: inside the request-id/access-log middleware.
    app.user_middleware.append(
        Middleware(CachedReads, prefixes=("/api/v1/stocks", "/api/v1/market/"))
    )
    return app
