"""The request owns its transaction: one pooled connection per request, at most.

A route that touches the database receives one connection, taken from the part's pool
when the request first needs it and held in one transaction until the route returns:
committed then (before the response is sent, so a 2xx means the change is durable),
rolled back when the route raises. Use cases and repositories take that connection and
never acquire another, so a burst of requests can only queue for the pool, never hold a
connection while waiting for a second one (the deadlock that wedged the gateway's logins).

Waiting for the pool is bounded: past ``acquire_timeout`` the request is answered
``503 DATABASE_BUSY`` with ``Retry-After``; a database that cannot be reached is
``503 DATABASE_UNAVAILABLE``. Work that must happen only once the change is committed
(telling other nodes, publishing) is registered with :meth:`RequestTransaction.after_commit`
and dropped on rollback.

Background work (consumers, relays, the feed) is not a request: it takes connections
from the pool itself, through :func:`acquire` so the same errors apply.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared.db.pool import HOLDS_REQUEST_CONNECTION
from shared.errors import ServiceUnavailableError

logger = logging.getLogger("shared.db")

# How long a client is asked to wait before retrying when the pool is exhausted or the
# database is unreachable: long enough for a burst to drain, short enough to feel live.
BUSY_RETRY_AFTER = "1"
DOWN_RETRY_AFTER = "5"

# What asyncpg raises when the server cannot be reached, is shutting down, refuses more
# connections, or the connection broke mid-request.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)


class DatabaseBusyError(ServiceUnavailableError):
    error_code = "DATABASE_BUSY"
    default_message = "Every database connection is in use; retry shortly."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": BUSY_RETRY_AFTER})
        kwargs.setdefault("details", {"dependency": "postgres"})
        super().__init__(message, **kwargs)


class DatabaseUnavailableError(ServiceUnavailableError):
    error_code = "DATABASE_UNAVAILABLE"
    default_message = "The database is unavailable; retry shortly."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": DOWN_RETRY_AFTER})
        kwargs.setdefault("details", {"dependency": "postgres"})
        super().__init__(message, **kwargs)


class QueryTimeoutError(ServiceUnavailableError):
    error_code = "QUERY_TIMEOUT"
    default_message = "The database did not answer in time; retry shortly."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": BUSY_RETRY_AFTER})
        kwargs.setdefault("details", {"dependency": "postgres"})
        super().__init__(message, **kwargs)


# What a request may raise from the database that is the dependency's failure, not the
# request's: a statement cut by statement_timeout, a connection lost or refused mid-request.
DATABASE_FAILURES: tuple[type[Exception], ...] = (
    asyncpg.QueryCanceledError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)


def database_error(exc: Exception) -> ServiceUnavailableError:
    """The client's answer to one of :data:`DATABASE_FAILURES`: a 503 with ``Retry-After``."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return QueryTimeoutError()
    return DatabaseUnavailableError()


@asynccontextmanager
async def acquire(pool: asyncpg.Pool, *, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` for the block, waiting at most ``timeout`` seconds
    (:class:`DatabaseBusyError` after that, :class:`DatabaseUnavailableError` when the
    server cannot be reached)."""
    conn = await _acquire(pool, timeout)
    try:
        yield conn
    finally:
        await pool.release(conn)


async def _acquire(pool: asyncpg.Pool, timeout: float) -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await pool.acquire(timeout=timeout)
    except TimeoutError:
        raise DatabaseBusyError() from None
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailableError() from exc
    return conn


AfterCommit = Callable[[], Awaitable[None]]
# Work after the commit that needs a connection outside any transaction (a TimescaleDB
# continuous-aggregate refresh cannot run inside one).
AfterCommitWork = Callable[[asyncpg.Connection], Awaitable[None]]


class RequestTransaction:
    """A request's unit of work: its one connection (acquired on first use) inside one
    transaction, and what to do once that transaction has committed."""

    __slots__ = (
        "_after_commit",
        "_after_commit_work",
        "_conn",
        "_holds",
        "_pool",
        "_timeout",
        "_transaction",
    )

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float) -> None:
        self._pool = pool
        self._timeout = acquire_timeout
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None
        self._after_commit: list[AfterCommit] = []
        self._after_commit_work: list[AfterCommitWork] = []
        self._holds: Any = None

    async def connection(self) -> asyncpg.Connection:
        """The request's connection, in its open transaction (acquired on first call)."""
        if self._conn is None:
            conn = await _acquire(self._pool, self._timeout)
            try:
                transaction = conn.transaction()
                await transaction.start()
            except BaseException:
                await self._pool.release(conn)
                raise
            self._conn, self._transaction = conn, transaction
            # From here on, the pool refuses this request a second connection.
            self._holds = HOLDS_REQUEST_CONNECTION.set(True)
        return self._conn

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback`` once the transaction has committed; never if it rolls back."""
        self._after_commit.append(callback)

    def after_commit_with_connection(self, work: AfterCommitWork) -> None:
        """Run ``work`` once the transaction has committed, on a connection outside any
        transaction (taken after the request's own was given back); never on rollback."""
        self._after_commit_work.append(work)

    async def finish(self, *, commit: bool) -> None:
        """Commit (then run the after-commit work) or roll back, and release."""
        conn, transaction, callbacks = self._conn, self._transaction, self._after_commit
        works = self._after_commit_work
        self._conn, self._transaction, self._after_commit = None, None, []
        self._after_commit_work = []
        if self._holds is not None:
            HOLDS_REQUEST_CONNECTION.reset(self._holds)
            self._holds = None
        if conn is not None:
            try:
                if commit:
                    await transaction.commit()
                else:
                    await transaction.rollback()
            except CONNECTION_ERRORS as exc:
                if commit:
                    raise DatabaseUnavailableError() from exc
                # A rollback on a broken connection: the server has rolled back already.
            finally:
                await self._pool.release(conn)
        if commit:
            for callback in callbacks:
                await callback()
            if works:
                other = await _acquire(self._pool, self._timeout)
                try:
                    for work in works:
                        await work(other)
                finally:
                    await self._pool.release(other)


@asynccontextmanager
async def request_transaction(
    pool: asyncpg.Pool, *, acquire_timeout: float
) -> AsyncIterator[RequestTransaction]:
    """A :class:`RequestTransaction` for the block: committed when the block ends
    normally, rolled back when it raises -- unless the error says ``keep_changes``
    (an error answered after a change that must stand, such as a revoked token family)."""
    unit = RequestTransaction(pool, acquire_timeout=acquire_timeout)
    try:
        yield unit
    except BaseException as exc:
        await unit.finish(commit=bool(getattr(exc, "keep_changes", False)))
        raise
    await unit.finish(commit=True)
