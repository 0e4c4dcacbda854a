"""Test infrastructure shared by every test in the repository.

Tests talk to real PostgreSQL, Redis and NATS. Which servers is decided by
``scripts/test`` (and so by CI): it exports ``BOURSE_TEST_DATABASE_URL`` (a superuser
DSN), ``BOURSE_TEST_REDIS_URL`` and ``BOURSE_TEST_NATS_URL``; the defaults are the
local servers on their standard ports.

Isolation from development data and from concurrent runs:
- PostgreSQL: a fresh database ``bourse_test_<run>`` per session, dropped at the end;
  every part's role, schema and migrations are set up in it as in production.
- Redis: every key under the prefix ``test:<run>:``, deleted at the end.
- NATS: every subject and stream under the prefix ``t<run>.`` / ``T<run>_``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import settings as hypothesis_settings

from bourse.parts import PARTS, Part
from shared.db import (
    create_pool,
    drop_database,
    ensure_database,
    with_database,
)
from tests.infra import TestInfra, delete_streams, migrate_parts

# Property tests draw new examples on every developer's run, but the same ones on CI, so
# that a landing never depends on luck; a failure found locally is replayed from
# .hypothesis/ until fixed.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
async def infra(run_id: str) -> AsyncIterator[TestInfra]:
    admin = os.environ.get(
        "BOURSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    database = f"bourse_test_{run_id}"
    await ensure_database(admin, database)
    info = TestInfra(
        run_id=run_id,
        admin_url=with_database(admin, database),
        admin_server_url=admin,
        database=database,
        redis_url=os.environ.get("BOURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=f"test:{run_id}:",
        nats_url=os.environ.get("BOURSE_TEST_NATS_URL", "nats://127.0.0.1:4222"),
        nats_prefix=f"t{run_id}",
    )
    try:
        await migrate_parts(info, PARTS)
        yield info
    finally:
        await drop_database(admin, database)
        client = aioredis.from_url(info.redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{info.redis_prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
        await delete_streams(info.nats_url, info.nats_prefix)


@pytest.fixture
async def db_pool_for():  # type: ignore[no-untyped-def]
    """Factory: an asyncpg pool connected as a part's role on the session database."""
    pools = []

    async def _open(infra: TestInfra, part: Part):  # type: ignore[no-untyped-def]
        pool = await create_pool(
            infra.dsn_for(part), schema=part.schema, application_name=f"test-{part.name}"
        )
        pools.append(pool)
        return pool

    yield _open
    for pool in pools:
        await pool.close()
