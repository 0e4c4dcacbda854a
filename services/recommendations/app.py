"""The recommendations service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.recommendations import events, service
from services.recommendations.config import RecommendationsSettings
from services.recommendations.market_inputs import MarketInputs
from services.recommendations.routes import LATEST_TAG, router
from services.recommendations.runner import Runner, RunTriggers
from shared.cache import ResponseCache
from shared.db import Migration, load_migrations
from shared.messaging import Delivered
from shared.runtime import Extension, Resources, create_part_app, outbox_relay

NAME = "recommendations"
SCHEMA = "recommendations"


def migrations() -> list[Migration]:
    """The recommendations schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("services.recommendations.migrations")
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def runs(settings: RecommendationsSettings) -> Extension:
    """The runner and what starts it (see :mod:`services.recommendations.runner`)."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        inputs = MarketInputs(
            resources.bus,
            chunk=settings.history_chunk,
            concurrency=settings.history_concurrency,
            timeout=settings.history_timeout_seconds,
        )
        cache = ResponseCache(resources.redis, namespace="recommendations:http", local_ttl=1.0)
        app.state.read_cache = cache

        async def published() -> None:
            # Other replicas' in-process copies expire within the cache's local TTL (1 s).
            await cache.invalidate(LATEST_TAG)

        runner = Runner(resources.pool, resources.bus, inputs, on_published=published)
        triggers = RunTriggers(
            runner,
            resources.bus,
            retry_seconds=settings.run_retry_seconds,
            catch_up=settings.catch_up_run,
            backfill_years=settings.backfill_years,
        )
        resources.extras["runner"] = runner
        await triggers.start()
        try:
            yield
        finally:
            await triggers.stop()

    return extension


def latest_rpc() -> Extension:
    """Answer ``recommendations.rpc.latest`` (see :mod:`services.recommendations.events`)."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        async def latest(request: events.LatestRequest, _: Delivered) -> events.LatestReply:
            async with resources.pool.acquire() as conn:
                return await service.latest_calls(conn, request)

        responder = await resources.bus.serve(events.RPC_LATEST, events.LatestRequest, latest)
        try:
            yield
        finally:
            await responder.unsubscribe()

    return extension


def create_app(settings: RecommendationsSettings) -> FastAPI:
    return create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router],
        title="Bourse recommendations service",
        description="Daily BUY/HOLD/SELL recommendations with disclosures.",
        # The relay declares our stream before the runner consumes from it.
        extensions=[
            outbox_relay(events.STREAM, events.STREAM_SUBJECTS),
            runs(settings),
            latest_rpc(),
        ],
    )
