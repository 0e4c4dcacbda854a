"""The request-owned transaction (:mod:`shared.db.transaction`) on real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bourse.parts import PORTFOLIO
from shared.db.pool import SecondConnectionError
from shared.db.transaction import (
    DATABASE_FAILURES,
    DatabaseBusyError,
    DatabaseUnavailableError,
    QueryTimeoutError,
    RequestTransaction,
    acquire,
    database_error,
    request_transaction,
)
from shared.errors import ConflictError
from tests.infra import TestInfra

# One table per test, so tests never see each other's rows.
TABLE: dict[int, str] = {}


@pytest.fixture
async def pool(infra: TestInfra, db_pool_for) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[no-untyped-def]
    pool = await db_pool_for(infra, PORTFOLIO)
    table = f"tx_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {table} (v text)")
    TABLE[id(pool)] = table
    yield pool
    await pool.execute(f"DROP TABLE {table}")


async def _values(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(f"SELECT v FROM {TABLE[id(pool)]} ORDER BY v")
    return [r["v"] for r in rows]


async def _insert(unit: RequestTransaction, pool: asyncpg.Pool, value: str) -> None:
    conn = await unit.connection()
    await conn.execute(f"INSERT INTO {TABLE[id(pool)]} VALUES ($1)", value)


async def test_commits_when_the_block_ends_and_runs_after_commit_work(pool: asyncpg.Pool) -> None:
    seen: list[list[str]] = []

    async def after() -> None:
        seen.append(await _values(pool))

    async with request_transaction(pool, acquire_timeout=1) as unit:
        await _insert(unit, pool, "a")
        unit.after_commit(after)
        # Not visible to others before the commit (looked at from outside the request:
        # inside it, the pool refuses a second connection).
        outside = asyncio.create_task(_values(pool), context=contextvars.Context())
        assert await outside == []
    assert await _values(pool) == ["a"]
    assert seen == [["a"]]  # after-commit work saw the committed row


async def test_rolls_back_on_error_and_drops_after_commit_work(pool: asyncpg.Pool) -> None:
    ran: list[bool] = []

    async def after() -> None:
        ran.append(True)

    with pytest.raises(ConflictError):
        async with request_transaction(pool, acquire_timeout=1) as unit:
            await _insert(unit, pool, "a")
            unit.after_commit(after)
            raise ConflictError()
    assert await _values(pool) == []
    assert ran == []


async def test_an_error_that_keeps_changes_commits_them(pool: asyncpg.Pool) -> None:
    with pytest.raises(ConflictError):
        async with request_transaction(pool, acquire_timeout=1) as unit:
            await _insert(unit, pool, "kept")
            raise ConflictError(keep_changes=True)
    assert await _values(pool) == ["kept"]


async def test_one_connection_per_request_taken_only_when_used(pool: asyncpg.Pool) -> None:
    free = pool.get_idle_size() + (pool.get_max_size() - pool.get_size())
    async with request_transaction(pool, acquire_timeout=1) as unit:
        assert pool.get_idle_size() + (pool.get_max_size() - pool.get_size()) == free
        first = await unit.connection()
        assert await unit.connection() is first
        assert first.is_in_transaction()
    assert pool.get_idle_size() + (pool.get_max_size() - pool.get_size()) == free


async def test_an_exhausted_pool_answers_busy_instead_of_waiting(pool: asyncpg.Pool) -> None:
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DatabaseBusyError) as caught:
            async with request_transaction(pool, acquire_timeout=0.2) as unit:
                await unit.connection()
        assert asyncio.get_running_loop().time() - started < 2
        assert caught.value.status_code == 503
        assert caught.value.headers["Retry-After"] == "1"
    finally:
        for conn in held:
            await pool.release(conn)


async def test_an_unreachable_server_is_unavailable_not_an_error() -> None:
    pool = await asyncpg.create_pool("postgresql://nobody@127.0.0.1:1/none", min_size=0)
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with acquire(pool, timeout=2):
                pass
    finally:
        await pool.close()


async def test_a_query_cut_by_statement_timeout_is_a_503(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("SET statement_timeout = 100")
        with pytest.raises(asyncpg.QueryCanceledError) as caught:
            await conn.execute("SELECT pg_sleep(2)")
        await conn.execute("RESET statement_timeout")
    assert isinstance(caught.value, DATABASE_FAILURES)
    answer = database_error(caught.value)
    assert isinstance(answer, QueryTimeoutError)
    assert answer.status_code == 503 and "Retry-After" in answer.headers


async def test_pools_carry_the_statement_and_idle_transaction_timeouts(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "15s"
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"


async def test_a_second_connection_inside_a_request_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(SecondConnectionError):
        async with request_transaction(pool, acquire_timeout=1) as unit:
            await unit.connection()
            async with pool.acquire():
                pass
    with pytest.raises(SecondConnectionError):
        async with request_transaction(pool, acquire_timeout=1) as unit:
            await unit.connection()
            await pool.fetchval("SELECT 1")  # the pool's shortcuts acquire too
    # Outside a request, and in a request that has not taken its connection, it may.
    async with request_transaction(pool, acquire_timeout=1):
        assert await pool.fetchval("SELECT 1") == 1
    assert await pool.fetchval("SELECT 1") == 1


async def _terminate(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """The server closes ``conn`` (what a restart or an admin shutdown does to it)."""
    pid = conn.get_server_pid()
    # From a context of its own: inside the request the pool refuses a second connection.
    killed = asyncio.create_task(
        pool.fetchval("SELECT pg_terminate_backend($1)", pid), context=contextvars.Context()
    )
    assert await killed
    await asyncio.sleep(0.05)


async def test_a_connection_closed_by_the_server_mid_request_is_a_lost_database(
    pool: asyncpg.Pool,
) -> None:
    # Whatever asyncpg raises for the dead connection (the server's error, or its own
    # InterfaceError once it knows the connection is closed), the request ends with an
    # error answered 503 -- never the rollback's or the release's complaint about the dead
    # connection, which the handler would answer 500.
    for queries in (1, 2):
        with pytest.raises(Exception) as caught:
            async with request_transaction(pool, acquire_timeout=1) as unit:
                conn = await unit.connection()
                await _terminate(pool, conn)
                for _ in range(queries):
                    with contextlib.suppress(asyncpg.PostgresError):
                        await conn.execute("SELECT 1")
                await conn.execute("SELECT 1")
        error = caught.value
        assert isinstance(error, (DatabaseUnavailableError, *DATABASE_FAILURES)), repr(error)

    # The pool replaced the dead connections.
    async with request_transaction(pool, acquire_timeout=1) as unit:
        assert await (await unit.connection()).fetchval("SELECT 1") == 1
