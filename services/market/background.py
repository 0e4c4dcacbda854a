"""The market service's background work, as lifespan extensions (entered in order after
the pool, Redis and NATS are open; closed in reverse):

- ``response_cache``: the Redis cache-aside for hot reads, invalidated on every
  ``market.eod.completed`` (a core subscription in every replica: all drop their copies);
- ``token_cache``: verified access tokens remembered until they expire;
- ``outbox``: the ``MARKET`` JetStream stream and the outbox relay that publishes to it;
- ``universe_loader``: loads the simulated universe into an empty database, in the
  background (progress in the logs and on ``/api/v1/market/status``);
- ``rpc``: answers ``market.rpc.quotes``, ``market.rpc.history``, ``market.rpc.closes``,
  ``market.rpc.index`` and ``market.rpc.universe``;
- ``live_feed``: the simulated ticks (see :mod:`services.market.feed`);
- ``model_view``: the read model of the latest recommendation run behind
  ``include_ml`` (see :mod:`services.market.model_view`); each new run drops the cached
  analysis answers that include it (tag ``ml``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from services.market import columnar_history, events, listings
from services.market.config import MarketSettings
from services.market.feed import Feed
from services.market.model_view import ModelViewFeed
from services.market.repository import loads
from services.market.service import loading
from services.market.service import market as market_service
from shared.cache import ResponseCache
from shared.jwt import RemoteJwks, TokenVerifier
from shared.messaging import Delivered, Event, OutboxRelay
from shared.runtime import Extension, Resources

logger = logging.getLogger("services.market")

EOD_TAG = "eod"
ML_TAG = "ml"  # analysis answers with include_ml=true: dropped when a new run is held
# A request that read the previous run before a replacement committed can store its answer
# after the invalidation; it is dropped again once such a request has surely finished.
ML_SECOND_INVALIDATION_SECONDS = 2.0


def response_cache() -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        cache = ResponseCache(resources.redis, namespace="market:http", local_ttl=1.0)
        app.state.response_cache = cache

        async def on_eod(event: Event[events.EodCompleted], _: Delivered) -> None:
            removed = await cache.invalidate(EOD_TAG)
            logger.info(
                "session %s completed: %d cached responses dropped", event.data.session, removed
            )

        sub = await resources.bus.subscribe(
            events.EOD_COMPLETED, Event[events.EodCompleted], on_eod
        )
        try:
            yield
        finally:
            await sub.unsubscribe()

    return extension


def token_cache(settings: MarketSettings) -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        if settings.token_cache_size:
            app.state.token_verifier = TokenVerifier(
                RemoteJwks(settings.jwks_url, client=resources.http),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                cache_size=settings.token_cache_size,
            )
        yield

    return extension


def outbox() -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        await resources.bus.ensure_stream(
            events.STREAM, events.STREAM_SUBJECTS, max_age=timedelta(days=7)
        )
        relay = OutboxRelay(resources.pool, resources.bus, retention=timedelta(days=7))
        await relay.start()
        app.state.outbox_relay = relay
        try:
            yield
        finally:
            await relay.stop()

    return extension


def universe_loader(settings: MarketSettings) -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        task: asyncio.Task[object] | None = None
        async with resources.pool.acquire() as conn:
            present = await loading.universe_present(conn)
            last = await loads.latest(conn)
            if present and (last is None or last.state == "complete"):
                # Derived data emptied by a migration (0004 rebuilt the index): recompute
                # it from the bars before serving, whatever brought the bars.
                await loading.ensure_derived(conn)
        if settings.universe_autoload and (
            not present or (last is not None and last.state != "complete")
        ):
            spec = loading.universe_spec(
                settings.universe_size, settings.universe_years, settings.universe_seed
            )
            claimed = asyncio.Event()
            task = asyncio.create_task(
                loading.load_universe(resources.pool, spec, claimed=claimed),
                name="market-universe-load",
            )
            task.add_done_callback(_log_failure)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(claimed.wait(), 10.0)
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return extension


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("universe load failed", exc_info=task.exception())


def rpc() -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        pool = resources.bus
        budget = max(64 * 1024, resources.bus.client.max_payload // 2)

        async def quotes(request: events.QuotesRequest, _: Delivered) -> events.QuotesReply:
            return await listings.quotes_reply(resources.pool, request.tickers)

        async def history(request: events.HistoryRequest, _: Delivered) -> events.HistoryReply:
            return await market_service.history_reply(resources.pool, request, budget_bytes=budget)

        async def index(request: events.IndexRequest, _: Delivered) -> events.IndexReply:
            return await market_service.index_reply(resources.pool, request)

        async def universe(request: events.UniverseRequest, _: Delivered) -> events.UniverseReply:
            return await listings.universe_reply(resources.pool, request, budget_bytes=budget)

        async def closes(request: events.ClosesRequest, _: Delivered) -> events.ClosesReply:
            return await columnar_history.closes_reply(resources.pool, request, budget_bytes=budget)

        subs = [
            await pool.serve(events.RPC_UNIVERSE, events.UniverseRequest, universe),
            await pool.serve(events.RPC_CLOSES, events.ClosesRequest, closes, max_concurrency=8),
            await pool.serve(events.RPC_QUOTES, events.QuotesRequest, quotes),
            await pool.serve(events.RPC_INDEX, events.IndexRequest, index),
            await pool.serve(events.RPC_HISTORY, events.HistoryRequest, history, max_concurrency=8),
        ]
        try:
            yield
        finally:
            for sub in subs:
                await sub.unsubscribe()

    return extension


def live_feed(settings: MarketSettings) -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        if settings.feed_mode == "off":
            app.state.feed = None
            yield
            return
        cache: ResponseCache = app.state.response_cache

        async def on_eod(_: object) -> None:
            await cache.invalidate(EOD_TAG)

        feed = Feed(
            resources.pool,
            resources.bus,
            mode=settings.feed_mode,
            rate=settings.feed_rate,
            interval=settings.feed_interval,
            flush_interval=settings.feed_flush_interval,
            seed=settings.universe_seed,
            on_eod=on_eod,
        )

        async def ready() -> bool:
            async with resources.pool.acquire() as conn:
                last = await loads.latest(conn)
                present = await loading.universe_present(conn)
            return present and (last is None or last.state == "complete")

        feed.start(ready)
        app.state.feed = feed
        try:
            yield
        finally:
            await feed.stop()

    return extension


def model_view(settings: MarketSettings) -> Extension:
    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        cache: ResponseCache = app.state.response_cache
        later: set[asyncio.Task[None]] = set()

        async def invalidate_again() -> None:
            await asyncio.sleep(ML_SECOND_INVALIDATION_SECONDS)
            await cache.invalidate(ML_TAG)

        async def on_replaced() -> None:
            removed = await cache.invalidate(ML_TAG)
            logger.info("new recommendation run held: %d cached analyses dropped", removed)
            task = asyncio.create_task(invalidate_again())
            later.add(task)
            task.add_done_callback(later.discard)

        feed = ModelViewFeed(
            resources.pool,
            resources.bus,
            stream=settings.recommendation_stream,
            on_replaced=on_replaced,
            retry_seconds=settings.model_view_retry_seconds,
        )
        await feed.start()
        app.state.model_view = feed
        try:
            yield
        finally:
            await feed.stop()
            for task in list(later):
                task.cancel()

    return extension
