"""The realtime service's app factory and its background work (the streams, the rule
evaluator, the alert fan-out, the recommendation-event consumer and the flagged-holding
consumer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from services.realtime.alerting import AlertFanout, RecommendationAlerts, RuleEvaluator
from services.realtime.config import RealtimeSettings
from services.realtime.holding_alerts import HoldingAlerts
from services.realtime.routes import router
from services.realtime.state import Realtime
from services.realtime.streams.feed_status import FeedWatch
from services.realtime.streams.hub import TickHub
from services.realtime.streams.limits import ConnectionLeases, Limits, RoleLimits
from services.realtime.streams.metrics import install_collector
from services.realtime.streams.routes import router as streams_router
from services.realtime.watchlists import WatchlistMembership
from shared.db import Migration, load_migrations
from shared.runtime import Resources, create_part_app

NAME = "realtime"
SCHEMA = "realtime"


def migrations() -> list[Migration]:
    """The realtime schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("services.realtime.migrations")
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def limits(settings: RealtimeSettings) -> Limits:
    return Limits(
        {
            "viewer": RoleLimits(
                settings.viewer_max_subscriptions, settings.viewer_max_connections
            ),
            "analyst": RoleLimits(
                settings.analyst_max_subscriptions, settings.analyst_max_connections
            ),
            "admin": RoleLimits(settings.admin_max_subscriptions, settings.admin_max_connections),
        }
    )


def streams_extension(
    settings: RealtimeSettings,
) -> Callable[[FastAPI, Resources], AbstractAsyncContextManager[None]]:
    """Start the node's streams and alerting after the resources open; stop them before
    the resources close (the lifespan then drains NATS)."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        install_collector()
        hub = TickHub(
            resources.bus,
            routing=settings.tick_routing,
            snapshot_timeout=settings.snapshot_timeout_seconds,
            heartbeat=settings.heartbeat_seconds,
            coalesce=settings.coalesce_ms / 1000,
        )
        evaluator = RuleEvaluator(
            resources.pool, resources.bus, hub, reload_seconds=settings.rules_reload_seconds
        )
        realtime = Realtime(
            settings=settings,
            pool=resources.pool,
            hub=hub,
            feed=FeedWatch(resources.bus),
            leases=ConnectionLeases(resources.redis),
            limits=limits(settings),
            evaluator=evaluator,
            fanout=AlertFanout(resources.bus),
            recommendations=RecommendationAlerts(
                resources.pool, resources.bus, stream=settings.recommendation_stream
            ),
            watchlists=WatchlistMembership(
                resources.pool, resources.bus, evaluator, stream=settings.portfolio_stream
            ),
        )
        await realtime.leases.start()
        await hub.start()
        await realtime.feed.start()
        await realtime.fanout.start()
        await realtime.evaluator.start()
        await realtime.recommendations.start()
        holdings = HoldingAlerts(resources.pool, resources.bus, stream=settings.portfolio_stream)
        await holdings.start()
        app.state.holding_alerts = holdings
        await realtime.watchlists.start()
        app.state.realtime = realtime
        try:
            yield
        finally:
            # Normally done already by the server before it stops (services.realtime.server).
            await hub.go_away()
            await holdings.stop()
            await realtime.watchlists.stop()
            await realtime.recommendations.stop()
            await realtime.evaluator.stop()
            await realtime.fanout.stop()
            await realtime.feed.stop()
            await hub.stop()
            await realtime.leases.stop()

    return extension


def create_app(settings: RealtimeSettings) -> FastAPI:
    return create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router, streams_router],
        title="Bourse realtime service",
        description="Live price and alert streams (WebSocket); alert rules and alert history.",
        extensions=[streams_extension(settings)],
        # Price streams need NATS and not PostgreSQL; alert rules the reverse: neither
        # alone leaves the node with nothing to serve (docs/architecture.md, Health).
        ready_requires=(),
    )
