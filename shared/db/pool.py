"""asyncpg pools: one per service, connected as the service's own role, with the
service's schema as the only entry on its search path."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


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
    **kwargs: Any,
) -> asyncpg.Pool:
    """Open a pool whose connections see ``schema`` first (then ``pg_catalog``).

    ``json``/``jsonb`` columns are encoded and decoded with orjson.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=_init_connection,
        server_settings={"search_path": schema, "application_name": application_name},
        **kwargs,
    )
    assert pool is not None
    return pool


async def open_connection(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection with the same codecs as a pool's (for migrations and scripts)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn, **kwargs)
    await _init_connection(conn)
    return conn


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip on a pooled connection (the readiness check)."""
    await pool.fetchval("SELECT 1")
