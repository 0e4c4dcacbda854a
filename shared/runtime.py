"""What a part opens at start-up and closes at shutdown, and how it is served.

:func:`open_resources` is used inside a part's lifespan: it migrates the part's schema,
opens its pool, Redis and NATS connections and (for services) the token verifier, and
registers the readiness checks for each. :func:`serve` is a part's ``__main__``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import asyncpg
import httpx
import uvicorn
from fastapi import APIRouter, FastAPI

from shared.db import Migration, create_pool, migrate, ping
from shared.db.cursor_key import stored_cursor_secret
from shared.db.transaction import DATABASE_ERRORS
from shared.http import create_service_app
from shared.jwt import RemoteJwks, TokenVerifier
from shared.log import configure_logging
from shared.messaging import Bus, OutboxRelay, connect_bus
from shared.messaging.bus import MESSAGING_ERRORS
from shared.pagination import CursorKey
from shared.redis import REDIS_ERRORS, RedisNamespace, connect_redis
from shared.settings import BaseServiceSettings, ServiceSettings, SettingsError, load_settings

logger = logging.getLogger("shared.runtime")


@dataclass
class Resources:
    """A part's open connections. Owned by its lifespan; handed to its dependencies."""

    pool: asyncpg.Pool
    redis: RedisNamespace
    bus: Bus
    http: httpx.AsyncClient
    # Signs and checks the part's pagination cursors (shared.pagination).
    cursor_key: CursorKey
    verifier: TokenVerifier | None = None
    # How long a request waits for a pooled connection (then 503 DATABASE_BUSY).
    db_acquire_timeout: float = 5.0
    extras: dict[str, object] = field(default_factory=dict)


@asynccontextmanager
async def open_resources(
    app: FastAPI,
    settings: BaseServiceSettings,
    *,
    name: str,
    schema: str,
    migrations: list[Migration],
    ready_requires: Collection[str] = ("postgres",),
) -> AsyncIterator[Resources]:
    """Open (and on exit close) everything ``name`` needs; see the module docstring.
    ``ready_requires`` names the dependencies without which ``/ready`` answers 503 (the
    others are reported as degraded)."""
    pool = await create_pool(
        settings.database_url,
        schema=schema,
        application_name=name,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms,
    )
    redis = connect_redis(settings.redis_url, prefix=settings.redis_prefix)
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
    bus: Bus | None = None
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn, schema, migrations)
            if settings.cursor_key is not None:
                cursor_key = CursorKey(settings.cursor_key.get_secret_value().encode())
            else:
                cursor_key = CursorKey(await stored_cursor_secret(conn))
        for migration in applied:
            logger.info("applied migration %s/%04d_%s", *_describe(migration))
        bus = await connect_bus(settings.nats_url, name=name, prefix=settings.nats_prefix)
        bus.stream_replicas = settings.nats_stream_replicas
        bus.translate_errors((DATABASE_ERRORS, REDIS_ERRORS, MESSAGING_ERRORS))
        verifier = None
        if isinstance(settings, ServiceSettings):
            verifier = TokenVerifier(
                RemoteJwks(settings.jwks_url, client=http),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                # Verified tokens are remembered until they expire: one signature check
                # per token instead of one per request.
                cache_size=10_000,
            )
            app.state.token_verifier = verifier
        resources = Resources(
            pool=pool,
            redis=redis,
            bus=bus,
            http=http,
            cursor_key=cursor_key,
            verifier=verifier,
            db_acquire_timeout=settings.db_acquire_timeout_seconds,
        )
        app.state.resources = resources
        app.state.readiness_checks = {
            "postgres": lambda: ping(pool),
            "redis": redis.ping,
            "nats": bus.ping,
        }
        app.state.readiness_required = frozenset(ready_requires)
        yield resources
    finally:
        if bus is not None:
            await bus.drain()
        await http.aclose()
        await redis.close()
        await pool.close()


def _describe(migration: Migration) -> tuple[str, int, str]:
    return migration.source, migration.version, migration.name


S = TypeVar("S", bound=BaseServiceSettings)


# The cyclic GC's thresholds for every part (CPython's default: 700, 10, 10). A request
# allocates enough containers that the default collects many times a second, and full
# collections over a large heap stalled the event loop for tens of milliseconds (measured:
# p99 at 1,000 req/s). On a realtime node each socket holds a few hundred tracked objects
# and each tick allocates a dozen containers: with the defaults a benchmark run made 11 full
# collections of up to 0.39 s of CPU each, with these 2 of at most 0.11 s
# (docs/performance.md). Cycles are still collected, less often.
GC_THRESHOLDS = (50_000, 20, 100)


class PartServer(uvicorn.Server):
    """uvicorn's server, freezing what start-up allocated out of the collector's sight."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What is alive now (modules, the app, pools) lives as long as the process:
        # frozen, it is never walked again; collections see only per-request garbage.
        gc.collect()
        gc.freeze()


def serve(
    name: str,
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
    http_protocol: Callable[[S], type[asyncio.Protocol]] | None = None,
) -> None:
    """Run a part with uvicorn (uvloop + httptools); exit 2 on bad configuration.
    ``http_protocol`` gives the HTTP protocol class for the settings (default: uvicorn's
    httptools protocol)."""
    try:
        settings = load_settings(settings_cls)
    except SettingsError as exc:
        sys.stderr.write(f"{name}: {exc}\n")
        raise SystemExit(2) from None
    configure_logging(name, settings.log_level, settings.log_format)
    gc.set_threshold(*GC_THRESHOLDS)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol(settings) if http_protocol is not None else "httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    PartServer(config).run()


Extension = Callable[[FastAPI, Resources], AbstractAsyncContextManager[None]]


def create_part_app(
    *,
    name: str,
    schema: str,
    settings: BaseServiceSettings,
    migrations: list[Migration],
    routers: Sequence[APIRouter],
    title: str,
    description: str,
    version: str = "0.1.0",
    extensions: Sequence[Extension] = (),
    ready_requires: Collection[str] = ("postgres",),
) -> FastAPI:
    """A part's app: the common behaviour of :func:`shared.http.create_service_app`, with
    a lifespan that opens :class:`Resources` and then enters each of ``extensions``
    (a part's background work: consumers, relays, feeds), closing them in reverse.
    ``ready_requires``: the dependencies without which the part can serve nothing
    (``/ready`` answers 503 while one is down; see :mod:`shared.health`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_resources(
                app,
                settings,
                name=name,
                schema=schema,
                migrations=migrations,
                ready_requires=ready_requires,
            ) as resources,
            AsyncExitStack() as stack,
        ):
            stack.push_async_callback(app.state.outages.close)
            for extension in extensions:
                await stack.enter_async_context(extension(app, resources))
            yield

    return create_service_app(
        name=name,
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        routers=routers,
    )


def outbox_relay(
    stream: str, subjects: list[str], *, retention: timedelta = timedelta(days=7)
) -> Extension:
    """An extension that declares ``stream`` (JetStream, durable, file storage) for
    ``subjects`` and relays the part's outbox to it for as long as the part runs."""

    @asynccontextmanager
    async def extension(_: FastAPI, resources: Resources) -> AsyncIterator[None]:
        await resources.bus.ensure_stream(stream, subjects)
        relay = OutboxRelay(resources.pool, resources.bus, retention=retention)
        await relay.start()
        try:
            yield
        finally:
            await relay.stop()

    return extension
