"""The ledger of universe loads (progress and outcome)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

LOAD_LOCK = "bourse.market.universe_load"


@dataclass(frozen=True)
class LoadRow:
    id: int
    state: str
    securities: int
    sessions: int
    rows_total: int
    rows_loaded: int
    phase: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None


async def latest(conn: asyncpg.Connection) -> LoadRow | None:
    row = await conn.fetchrow(
        "SELECT id, state, securities, sessions, rows_total, rows_loaded, phase, started_at,"
        " finished_at, error FROM universe_loads ORDER BY id DESC LIMIT 1"
    )
    return LoadRow(*row) if row else None


async def start(
    conn: asyncpg.Connection, *, securities: int, sessions: int, rows_total: int, seed: int
) -> int:
    load_id: int = await conn.fetchval(
        "INSERT INTO universe_loads (state, securities, sessions, rows_total, seed)"
        " VALUES ('loading', $1, $2, $3, $4) RETURNING id",
        securities,
        sessions,
        rows_total,
        seed,
    )
    return load_id


async def set_total(conn: asyncpg.Connection, load_id: int, rows_total: int) -> None:
    await conn.execute(
        "UPDATE universe_loads SET rows_total = $2 WHERE id = $1", load_id, rows_total
    )


async def progress(conn: asyncpg.Connection, load_id: int, *, rows_loaded: int, phase: str) -> None:
    await conn.execute(
        "UPDATE universe_loads SET rows_loaded = $2, phase = $3 WHERE id = $1",
        load_id,
        rows_loaded,
        phase,
    )


async def finish(conn: asyncpg.Connection, load_id: int, *, error: str | None = None) -> None:
    await conn.execute(
        "UPDATE universe_loads SET state = $2, finished_at = now(), error = $3,"
        " phase = CASE WHEN $2 = 'complete' THEN 'complete' ELSE phase END WHERE id = $1",
        load_id,
        "failed" if error else "complete",
        error,
    )


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the session-level lock that marks a load in progress (False if taken)."""
    got: bool = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOAD_LOCK)
    return got


async def unlock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", LOAD_LOCK)


DERIVED_LOCK = "bourse.market.derived"


async def lock_derived(conn: asyncpg.Connection) -> None:
    """Wait for, and hold until the transaction ends, the right to rewrite the derived
    tables (statistics, index): two refreshes at once would each delete and re-insert
    the same rows and one would fail on the other's."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", DERIVED_LOCK)


async def reset_market_data(conn: asyncpg.Connection) -> None:
    """Empty every market table (a load that died half-way starts again from nothing)."""
    await conn.execute(
        "TRUNCATE daily_bars, corporate_actions, security_stats, market_index, latest_quotes,"
        " fundamental_facts, fundamental_metrics"
    )
    await conn.execute("DELETE FROM securities")
