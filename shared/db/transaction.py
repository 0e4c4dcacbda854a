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

from shared.db.pool import HOLDS_REQUEST_CONNECTION, DatabaseUnreachableError
from shared.errors import DependencyUnavailableError, ErrorTranslator

logger = logging.getLogger("shared.db")

# How long a client is asked to wait before retrying when the pool is exhausted or the
# database is unreachable: long enough for a burst to drain, short enough to feel live.
BUSY_RETRY_AFTER = 1
DOWN_RETRY_AFTER = 5

# What asyncpg raises when the server cannot be reached, is shutting down, refuses more
# connections, or the connection broke mid-request.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)

# What asyncpg raises on a connection that broke under it: the server's errors above, a
# call on a connection already closed (InterfaceError), a protocol left mid-operation by
# the server's shutdown message (InternalClientError).
BROKEN_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

# What background work (consumers, relays, the feed) sees when the database goes away: the
# errors above, and :func:`acquire`'s 503s. Such work logs a line and retries; it is not a
# bug to trace.
BACKGROUND_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    *BROKEN_CONNECTION_ERRORS,
    DependencyUnavailableError,
)


class DatabaseBusyError(DependencyUnavailableError):
    error_code = "DATABASE_BUSY"
    default_message = "Every database connection is in use; retry shortly."
    retry_after = BUSY_RETRY_AFTER

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, dependency="postgres", **kwargs)


class DatabaseUnavailableError(DependencyUnavailableError):
    error_code = "DATABASE_UNAVAILABLE"
    default_message = "The database is unavailable; retry shortly."
    retry_after = DOWN_RETRY_AFTER

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, dependency="postgres", **kwargs)


class QueryTimeoutError(DependencyUnavailableError):
    error_code = "QUERY_TIMEOUT"
    default_message = "The database did not answer in time; retry shortly."
    retry_after = BUSY_RETRY_AFTER

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, dependency="postgres", **kwargs)


# What a request may raise from the database that is the dependency's failure, not the
# request's: a statement cut by statement_timeout, a connection lost or refused mid-request,
# a new one that could not be made (a route that takes the pool itself, such as a cached
# read's build), or asyncpg's protocol left mid-operation by the server's shutdown message.
DATABASE_FAILURES: tuple[type[Exception], ...] = (
    DatabaseUnreachableError,
    asyncpg.QueryCanceledError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)


def database_error(exc: Exception) -> DependencyUnavailableError:
    """The client's answer to one of :data:`DATABASE_FAILURES`: a 503 with ``Retry-After``."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return QueryTimeoutError()
    return DatabaseUnavailableError()


# For :func:`shared.errors.install_error_handlers`.
DATABASE_ERRORS: ErrorTranslator = (DATABASE_FAILURES, database_error)


@asynccontextmanager
async def acquire(pool: asyncpg.Pool, *, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` for the block, waiting at most ``timeout`` seconds
    (:class:`DatabaseBusyError` after that, :class:`DatabaseUnavailableError` when the
    server cannot be reached)."""
    conn = await _acquire(pool, timeout)
    try:
        yield conn
    finally:
        await _release(pool, conn)


async def _acquire(pool: asyncpg.Pool, timeout: float) -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await pool.acquire(timeout=timeout)
    except TimeoutError:
        raise DatabaseBusyError() from None
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailableError() from exc
    return conn


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Give ``conn`` back. On a connection that broke mid-request the reset fails and
    asyncpg closes it instead: the request's answer (a 503 for the lost database, or the
    success already committed) must not become a 500 because of that."""
    try:
        await pool.release(conn)
    except Exception as exc:  # asyncpg has terminated the connection; the pool replaces it
        logger.debug("a broken connection was dropped on release: %s", exc)


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # the pool has taken the broken connection back
        return True


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
            except BROKEN_CONNECTION_ERRORS as exc:
                # BEGIN cannot fail for a reason of the request's: the connection broke
                # between its last use and now (the server shut it down while idle).
                await _release(self._pool, conn)
                raise DatabaseUnavailableError() from exc
            except BaseException:
                await _release(self._pool, conn)
                raise
            self._conn, self._transaction = conn, transaction
            # From here on, the pool refuses this request a second connection.
            self._holds = HOLDS_REQUEST_CONNECTION.set(True)
        return self._conn

    def connection_lost(self) -> bool:
        """Whether the request's connection was taken and has since been closed."""
        return self._conn is not None and _closed(self._conn)

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
            except BROKEN_CONNECTION_ERRORS as exc:
                if isinstance(exc, asyncpg.InterfaceError) and not _closed(conn):
                    raise  # a misuse of the connection, not a lost one
                if commit:
                    raise DatabaseUnavailableError() from exc
                # A rollback on a broken connection: the server has rolled back already.
            finally:
                await _release(self._pool, conn)
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
        # asyncpg reports a query on a connection the server has just closed (a restart,
        # an admin shutdown) as a misuse (InterfaceError), or as its own InternalClientError
        # when the shutdown arrived in the middle of the protocol: the database going away.
        lost = isinstance(exc, asyncpg.InternalClientError) or (
            isinstance(exc, asyncpg.InterfaceError) and unit.connection_lost()
        )
        await unit.finish(commit=bool(getattr(exc, "keep_changes", False)))
        if lost:
            raise DatabaseUnavailableError() from exc
        raise
    await unit.finish(commit=True)
