"""asyncpg pools: one per service, connected as the service's own role, with the
service's schema as the only entry on its search path.

A pool refuses to hand a second connection to a request that already holds its one
(:class:`SecondConnectionError`): waiting for a second connection while holding one is
how a burst deadlocked the gateway's pool, so it fails loudly, in tests first.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import asyncpg
import orjson

# True in a request's context while it holds its connection (set by
# :class:`shared.db.transaction.RequestTransaction`).
HOLDS_REQUEST_CONNECTION: ContextVar[bool] = ContextVar("holds_request_connection", default=False)


class SecondConnectionError(RuntimeError):
    """Code running inside a request asked the pool for a second connection."""


class DatabaseUnreachableError(ConnectionError):
    """A new connection to PostgreSQL could not be made (refused, reset, timed out).

    asyncpg lets the socket's own error through; this names it, so a handler answers it
    503 for the database (``shared.db.transaction.DATABASE_FAILURES``) while code that
    catches ``OSError`` still does. The original error is its ``__cause__``.
    """


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        raise DatabaseUnreachableError(exc.errno, f"cannot reach PostgreSQL: {exc}") from exc
    return conn


class Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """asyncpg's pool, refusing a second connection inside a request that holds one."""

    __slots__ = ()

    def acquire(self, *, timeout: float | None = None) -> Any:
        if HOLDS_REQUEST_CONNECTION.get():
            raise SecondConnectionError(
                "this request already holds a database connection: pass it down instead "
                "of taking another from the pool (see shared.db.transaction)"
            )
        return super().acquire(timeout=timeout)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(
    dsn: str,
    *,
    schema: str,
    application_name: str,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float = 30.0,
    statement_timeout_ms: int = 15_000,
    idle_in_transaction_timeout_ms: int = 60_000,
    **kwargs: Any,
) -> asyncpg.Pool:
    """Open a pool whose connections see ``schema`` first (then ``pg_catalog``).

    ``json``/``jsonb`` columns are encoded and decoded with orjson. Every connection
    carries ``statement_timeout`` and ``idle_in_transaction_session_timeout``, so no
    query and no forgotten transaction holds a connection (and its locks) for long; a
    statement cut by the server raises ``asyncpg.QueryCanceledError``.
    """
    # asyncpg.create_pool with our Pool class: the same arguments and defaults.
    pool = Pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        connect=_connect,
        command_timeout=command_timeout,
        init=_init_connection,
        server_settings={
            "search_path": schema,
            "application_name": application_name,
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
        },
        **kwargs,
    )
    await pool
    return pool


async def open_connection(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection with the same codecs as a pool's (for migrations and scripts)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn, **kwargs)
    await _init_connection(conn)
    return conn


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip on a pooled connection (the readiness check)."""
    await pool.fetchval("SELECT 1")
