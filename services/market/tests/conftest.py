"""Fixtures of the market service's own tests.

Repository and service tests run on a private database of this session
(``<session database>_market``) holding only the market schema, migrated as in production
and loaded with a small simulated universe (40 securities x 2 years), so that they neither
see nor disturb the demo data the end-to-end tests use. Tests that write create their own
securities (``factories.new_security``), so they do not depend on each other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bourse.parts import MARKET
from services.market.app import migrations
from services.market.service import loading
from services.market.tests import reference as ref
from shared.db import (
    create_pool,
    drop_database,
    ensure_database,
    ensure_service_schema,
    migrate,
    open_connection,
    service_dsn,
)
from shared.messaging import Bus, connect_bus
from shared.redis import RedisNamespace, connect_redis
from tests.infra import TestInfra

UNIVERSE_SIZE = 40
UNIVERSE_YEARS = 2
SEED = 7


@pytest.fixture(scope="session")
async def market_dsn(infra: TestInfra) -> AsyncIterator[str]:
    database = f"{infra.database}_market"
    await ensure_database(infra.admin_server_url, database)
    await ensure_service_schema(
        infra.admin_server_url, database=database, role=MARKET.db_role, schema=MARKET.schema
    )
    dsn = service_dsn(infra.admin_server_url, database=database, role=MARKET.db_role)
    conn = await open_connection(dsn)
    try:
        await migrate(conn, MARKET.schema, migrations())
        spec = loading.universe_spec(UNIVERSE_SIZE, UNIVERSE_YEARS, SEED)
        await loading.load_universe_on(conn, spec)
    finally:
        await conn.close()
    try:
        yield dsn
    finally:
        await drop_database(infra.admin_server_url, database)


@pytest.fixture
async def pool(market_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(market_dsn, schema="market", application_name="test-market")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def bus(infra: TestInfra) -> AsyncIterator[Bus]:
    # A prefix per test: subscriptions and streams never see another test's messages.
    bus = await connect_bus(
        infra.nats_url, name="test-market", prefix=f"{infra.nats_prefix}m{uuid.uuid4().hex[:6]}"
    )
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def redis(infra: TestInfra) -> AsyncIterator[RedisNamespace]:
    namespace = connect_redis(
        infra.redis_url, prefix=f"{infra.redis_prefix}m{uuid.uuid4().hex[:6]}:"
    )
    try:
        yield namespace
    finally:
        keys = [k async for k in namespace.client.scan_iter(match=f"{namespace.prefix}*")]
        if keys:
            await namespace.client.delete(*keys)
        await namespace.close()


@pytest.fixture
async def fresh_market_pool(infra: TestInfra) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own with a tiny universe (12 securities x 1 year), for tests that
    move the market along (the feed closes sessions)."""
    database = f"{infra.database}_m{uuid.uuid4().hex[:6]}"
    await ensure_database(infra.admin_server_url, database)
    await ensure_service_schema(
        infra.admin_server_url, database=database, role=MARKET.db_role, schema=MARKET.schema
    )
    dsn = service_dsn(infra.admin_server_url, database=database, role=MARKET.db_role)
    conn = await open_connection(dsn)
    try:
        await migrate(conn, MARKET.schema, migrations())
        await loading.load_universe_on(conn, loading.universe_spec(12, 1, SEED))
    finally:
        await conn.close()
    pool = await create_pool(dsn, schema="market", application_name="test-market-fresh")
    try:
        yield pool
    finally:
        await pool.close()
        await drop_database(infra.admin_server_url, database)


@pytest.fixture(scope="session")
async def reference_universe(infra: TestInfra) -> AsyncIterator[tuple[str, ref.MarketFrames]]:
    """A database of its own with a larger universe (150 securities x 4 years: splits,
    reverse splits, dividends, listings, delistings) that no test writes to, and its tables
    read into pandas frames by the independent reference (``reference.py``)."""
    database = f"{infra.database}_recon"
    await ensure_database(infra.admin_server_url, database)
    await ensure_service_schema(
        infra.admin_server_url, database=database, role=MARKET.db_role, schema=MARKET.schema
    )
    dsn = service_dsn(infra.admin_server_url, database=database, role=MARKET.db_role)
    conn = await open_connection(dsn)
    try:
        await migrate(conn, MARKET.schema, migrations())
        await loading.load_universe_on(conn, loading.universe_spec(150, 4, 20240101))
        frames = await ref.read_frames(conn)
    finally:
        await conn.close()
    try:
        yield dsn, frames
    finally:
        await drop_database(infra.admin_server_url, database)


@pytest.fixture
async def reference_pool(
    reference_universe: tuple[str, ref.MarketFrames],
) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(
        reference_universe[0], schema="market", application_name="test-reference"
    )
    try:
        yield pool
    finally:
        await pool.close()
