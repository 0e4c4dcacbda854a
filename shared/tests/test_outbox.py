"""The transactional outbox and the inbox against real PostgreSQL and NATS.

The module creates its own database (``bourse_msgtest_<random>``) with one schema migrated
by ``shared.messaging.migrations``, and drops it at the end; NATS subjects and the
stream live under a random prefix.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import asyncpg
import pytest
from pydantic import BaseModel

from shared.context import REQUEST_ID_HEADER, set_request_id
from shared.db import (
    create_pool,
    drop_database,
    ensure_database,
    load_migrations,
    migrate,
    open_connection,
    with_database,
)
from shared.messaging import (
    MIGRATIONS_PACKAGE,
    MSG_ID_HEADER,
    Bus,
    Event,
    MessagingUnavailableError,
    OutboxRelay,
    claim_once,
    connect_bus,
    enqueue,
)
from shared.tests.support import NATS_URL, TcpProxy, bus_with_stream, wait_until

ADMIN_URL = os.environ.get(
    "BOURSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SCHEMA = "svc"
STREAM = "OUTBOX"


class Changed(BaseModel):
    n: int


def changed(n: int) -> Event[Changed]:
    return Event[Changed](event_type="thing.changed", source="test", data=Changed(n=n))


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    database = f"bourse_msgtest_{uuid.uuid4().hex[:10]}"
    await ensure_database(ADMIN_URL, database)
    try:
        dsn = with_database(ADMIN_URL, database)
        conn = await open_connection(dsn)
        try:
            await conn.execute(f'CREATE SCHEMA "{SCHEMA}"')
            migrations = load_migrations(MIGRATIONS_PACKAGE, source="outbox")
            assert [m.name for m in await migrate(conn, SCHEMA, migrations)] == ["outbox"]
            assert await migrate(conn, SCHEMA, migrations) == []
        finally:
            await conn.close()
        pool = await create_pool(dsn, schema=SCHEMA, application_name="test-outbox")
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await drop_database(ADMIN_URL, database)


@pytest.fixture(scope="module")
async def bus() -> AsyncIterator[Bus]:
    async with bus_with_stream("test-outbox", STREAM, ["demo.>"]) as bus:
        yield bus


@pytest.fixture(autouse=True)
def no_request_id() -> None:
    set_request_id(None)


async def stream_count(bus: Bus, subject: str) -> int:
    wire = bus.subject(subject)
    info = await bus.client.jsm().stream_info(bus.stream_name(STREAM), subjects_filter=wire)
    return (info.state.subjects or {}).get(wire, 0)


async def unpublished(pool: asyncpg.Pool, subject: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = $1 AND published_at IS NULL", subject
    )
    return count


async def test_committed_event_is_published_once_and_rolled_back_one_never(
    pool: asyncpg.Pool, bus: Bus
) -> None:
    # A long poll interval: only the NOTIFY sent at commit can wake the relay in time.
    relay = OutboxRelay(pool, bus, poll_interval=30)
    await relay.start()
    try:
        lost = changed(0)
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, "demo.rollback", lost)
                raise RuntimeError("the change failed")

        kept = changed(1)
        set_request_id("req-outbox-1")
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "demo.commit", kept)
        set_request_id(None)

        await wait_until(lambda: stream_count(bus, "demo.commit"))
        await wait_until(lambda: _is_zero(unpublished(pool, "demo.commit")))
        stored = await bus.client.jsm().get_last_msg(
            bus.stream_name(STREAM), bus.subject("demo.commit")
        )
        assert stored.headers is not None
        assert stored.headers[MSG_ID_HEADER] == str(kept.event_id)
        assert stored.headers[REQUEST_ID_HEADER] == "req-outbox-1"
        assert stored.data is not None
        assert Event[Changed].model_validate_json(stored.data) == kept

        # Nothing is left to publish, and nothing was published twice.
        assert await relay.publish_pending() == 0
        assert await stream_count(bus, "demo.commit") == 1
        assert (relay.published, relay.duplicates) == (1, 0)
        assert await stream_count(bus, "demo.rollback") == 0
        assert not await pool.fetchval("SELECT 1 FROM outbox WHERE event_id = $1", lost.event_id)
    finally:
        await relay.stop()


async def test_two_relays_publish_each_event_once(pool: asyncpg.Pool, bus: Bus) -> None:
    events = [changed(n) for n in range(300)]
    for start in range(0, len(events), 30):
        async with pool.acquire() as conn, conn.transaction():
            for event in events[start : start + 30]:
                await enqueue(conn, "demo.pair", event)

    relays = [OutboxRelay(pool, bus, batch_size=10, poll_interval=0.1) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        await wait_until(lambda: _is_zero(unpublished(pool, "demo.pair")), timeout=10)
    finally:
        for relay in relays:
            await relay.stop()

    assert await stream_count(bus, "demo.pair") == 300
    # Every row was sent by exactly one relay: no row reached JetStream twice.
    assert sum(relay.published for relay in relays) == 300
    assert sum(relay.duplicates for relay in relays) == 0


async def test_relay_survives_a_nats_outage(pool: asyncpg.Pool, bus: Bus) -> None:
    proxy = TcpProxy("127.0.0.1", int(NATS_URL.rsplit(":", 1)[1]))
    await proxy.start()
    relay_bus = await connect_bus(
        f"nats://127.0.0.1:{proxy.port}",
        name="test-outbox-relay",
        prefix=bus.namespace.prefix,
        reconnect_time_wait=0.1,
    )
    relay = OutboxRelay(pool, relay_bus, poll_interval=0.1, max_backoff=0.3, publish_timeout=0.5)
    await relay.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "demo.outage", changed(1))
        await wait_until(lambda: _is_zero(unpublished(pool, "demo.outage")))

        await proxy.stop()  # NATS is gone for the relay
        await wait_until(lambda: not relay_bus.is_connected)
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "demo.outage", changed(2))
        await asyncio.sleep(0.5)
        assert await unpublished(pool, "demo.outage") == 1

        await proxy.start()  # back on the same port; the client reconnects
        await wait_until(lambda: relay_bus.is_connected)
        await wait_until(lambda: _is_zero(unpublished(pool, "demo.outage")))
        assert await stream_count(bus, "demo.outage") == 2
    finally:
        await relay.stop()
        await relay_bus.close()
        await proxy.stop()


async def test_relay_survives_losing_its_listening_connection(pool: asyncpg.Pool, bus: Bus) -> None:
    # A restarted PostgreSQL breaks the connection the relay LISTENs on; asyncpg takes it
    # back into the pool, and the relay must listen again on a fresh one, not crash (which
    # left every later event unpublished until the part was restarted).
    relay = OutboxRelay(pool, bus, poll_interval=0.1, max_backoff=0.3)
    await relay.start()
    try:
        await wait_until(lambda: relay.listening_pid is not None)
        killed = relay.listening_pid
        await pool.execute("SELECT pg_terminate_backend($1)", killed)
        await wait_until(lambda: relay.listening_pid not in (None, killed))

        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "demo.relisten", changed(1))
        await wait_until(lambda: _is_zero(unpublished(pool, "demo.relisten")))
        assert await stream_count(bus, "demo.relisten") == 1
        assert relay.running
    finally:
        await relay.stop()


async def test_failed_publish_leaves_the_row_for_retry(pool: asyncpg.Pool, bus: Bus) -> None:
    relay = OutboxRelay(pool, bus, publish_timeout=1)  # not started: driven by hand
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, "late.thing", changed(1))
    with pytest.raises(MessagingUnavailableError):
        await relay.publish_pending()  # no stream stores "late.>" yet
    row = await pool.fetchrow(
        "SELECT attempts, last_error, published_at FROM outbox WHERE subject = 'late.thing'"
    )
    assert row["attempts"] == 1
    assert row["published_at"] is None
    assert "stream" in row["last_error"]

    await bus.ensure_stream("LATE", ["late.>"], storage="memory")
    try:
        assert await relay.publish_pending() == 1
        assert await unpublished(pool, "late.thing") == 0
    finally:
        await bus.delete_stream("LATE")


async def test_relay_deletes_published_rows_after_retention(pool: asyncpg.Pool, bus: Bus) -> None:
    relay = OutboxRelay(pool, bus, poll_interval=0.1, retention=timedelta(0), cleanup_interval=0)
    await relay.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "demo.retention", changed(1))
        await wait_until(lambda: stream_count(bus, "demo.retention"))
        await wait_until(lambda: _is_zero(_rows(pool, "demo.retention")))
    finally:
        await relay.stop()


async def _rows(pool: asyncpg.Pool, subject: str) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE subject = $1", subject)
    return count


async def test_claim_once_makes_consumers_idempotent(pool: asyncpg.Pool) -> None:
    event_id = uuid.uuid4()
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert await claim_once(conn, "projector", event_id)
            assert not await claim_once(conn, "projector", event_id)
            assert await claim_once(conn, "another-consumer", str(event_id))
        assert not await claim_once(conn, "projector", event_id)

        # A claim rolled back with the consumer's work does not count.
        retried = uuid.uuid4()
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert await claim_once(conn, "projector", retried)
                raise RuntimeError("the consumer's writes failed")
        async with conn.transaction():
            assert await claim_once(conn, "projector", retried)


async def _is_zero(count: Awaitable[int]) -> bool:
    return await count == 0
