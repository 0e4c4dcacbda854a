"""The provider sync's state: its lock across replicas, where each provider is, the ledger
of synced sessions, and the securities it covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

SYNC_LOCK = "bourse.market.provider-sync"


async def try_lead(conn: asyncpg.Connection) -> bool:
    """Take the session-level lock only the replica running a sync holds (released when
    it ends, or when its connection dies with it)."""
    got: bool = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", SYNC_LOCK)
    return got


async def stop_leading(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", SYNC_LOCK)


@dataclass(frozen=True)
class SyncState:
    provider: str
    last_session: date | None
    sessions_synced: int
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


async def states(conn: asyncpg.Connection) -> list[SyncState]:
    rows = await conn.fetch(
        "SELECT provider, last_session, sessions_synced, last_attempt_at, last_success_at,"
        " last_error, last_error_at FROM provider_sync ORDER BY provider"
    )
    return [SyncState(*r) for r in rows]


async def state(conn: asyncpg.Connection, provider: str) -> SyncState | None:
    return next((s for s in await states(conn) if s.provider == provider), None)


async def attempted(conn: asyncpg.Connection, provider: str) -> None:
    await conn.execute(
        "INSERT INTO provider_sync (provider, last_attempt_at) VALUES ($1, now())"
        " ON CONFLICT (provider) DO UPDATE SET last_attempt_at = now()",
        provider,
    )


async def failed(conn: asyncpg.Connection, provider: str, error: str) -> None:
    await conn.execute(
        "INSERT INTO provider_sync (provider, last_error, last_error_at) VALUES ($1, $2, now())"
        " ON CONFLICT (provider) DO UPDATE SET last_error = $2, last_error_at = now()",
        provider,
        error[:1000],
    )


async def session_done(conn: asyncpg.Connection, provider: str, session: date) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM provider_sessions WHERE provider = $1 AND session = $2)",
        provider,
        session,
    )
    return found


@dataclass(frozen=True)
class SyncedSession:
    session: date
    bars_inserted: int
    bars_updated: int
    bars_rejected: int
    splits: int
    dividends: int
    unknown_tickers: int


async def synced(conn: asyncpg.Connection, provider: str, item: SyncedSession) -> None:
    """Record ``item`` in the ledger and move the provider's state past it (clearing its
    last error), in the caller's transaction."""
    await conn.execute(
        "INSERT INTO provider_sessions (provider, session, bars_inserted, bars_updated,"
        " bars_rejected, splits, dividends, unknown_tickers)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        provider,
        item.session,
        item.bars_inserted,
        item.bars_updated,
        item.bars_rejected,
        item.splits,
        item.dividends,
        item.unknown_tickers,
    )
    await conn.execute(
        "INSERT INTO provider_sync (provider, last_session, sessions_synced, last_success_at)"
        " VALUES ($1, $2, 1, now())"
        " ON CONFLICT (provider) DO UPDATE SET"
        " last_session = GREATEST(provider_sync.last_session, $2),"
        " sessions_synced = provider_sync.sessions_synced + 1, last_success_at = now(),"
        " last_error = NULL, last_error_at = NULL",
        provider,
        item.session,
    )


async def sessions(conn: asyncpg.Connection, provider: str) -> list[SyncedSession]:
    rows = await conn.fetch(
        "SELECT session, bars_inserted, bars_updated, bars_rejected, splits, dividends,"
        " unknown_tickers FROM provider_sessions WHERE provider = $1 ORDER BY session",
        provider,
    )
    return [SyncedSession(*r) for r in rows]


async def covered(conn: asyncpg.Connection) -> dict[str, int]:
    """Ticker → security id of what the sync covers: listed securities that are not
    simulated (a provider's prices never enter a simulated series)."""
    rows = await conn.fetch(
        "SELECT ticker, security_id FROM securities"
        " WHERE status = 'listed' AND data_source <> 'simulated'"
    )
    return {r["ticker"]: r["security_id"] for r in rows}


async def last_stored_day(conn: asyncpg.Connection, security_ids: list[int]) -> date | None:
    """The latest bar of any of ``security_ids`` (where a first sync starts after)."""
    day: date | None = await conn.fetchval(
        "SELECT max(d.day) FROM unnest($1::int[]) AS u(security_id)"
        " CROSS JOIN LATERAL (SELECT day FROM daily_bars b WHERE b.security_id = u.security_id"
        " ORDER BY day DESC LIMIT 1) d",
        security_ids,
    )
    return day
