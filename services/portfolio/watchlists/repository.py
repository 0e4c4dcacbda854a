"""Every SQL statement of the watchlists (schema ``portfolio``, table ``watchlists``).
Functions take the caller's connection (in the request's transaction) and return domain
values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.portfolio.watchlists.domain import Watchlist

_COLUMNS = "id, owner_id, name, tickers, version, created_at, updated_at"


def _watchlist(row: asyncpg.Record) -> Watchlist:
    return Watchlist(
        row["id"],
        row["owner_id"],
        row["name"],
        tuple(row["tickers"]),
        row["version"],
        row["created_at"],
        row["updated_at"],
    )


async def lock_owner(conn: asyncpg.Connection, owner_id: str) -> None:
    """Serialise one owner's creations, so the limit on lists holds under a burst."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('portfolio.watchlists:' || $1, 0))",
        owner_id,
    )


async def count_for_owner(conn: asyncpg.Connection, owner_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM watchlists WHERE owner_id = $1", owner_id
    )
    return count


async def page_for_owner(
    conn: asyncpg.Connection, owner_id: str, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Watchlist]:
    """The owner's lists, oldest first, after the keyset position ``after``."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM watchlists WHERE owner_id = $1"
        " AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))"
        " ORDER BY created_at, id LIMIT $4",
        owner_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_watchlist(row) for row in rows]


async def get(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: UUID, *, lock: bool = False
) -> Watchlist | None:
    """The owner's list (None for another owner's: the caller answers 404). ``lock``
    takes the row for the transaction, so changes to one list are serialised."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM watchlists WHERE id = $1 AND owner_id = $2"
        + (" FOR UPDATE" if lock else ""),
        watchlist_id,
        owner_id,
    )
    return _watchlist(row) if row is not None else None


async def insert(
    conn: asyncpg.Connection, watchlist_id: UUID, owner_id: str, name: str, tickers: Sequence[str]
) -> Watchlist | None:
    """The new list, or None if the owner already has one with that name."""
    row = await conn.fetchrow(
        "INSERT INTO watchlists (id, owner_id, name, tickers) VALUES ($1, $2, $3, $4)"
        f" ON CONFLICT ON CONSTRAINT watchlists_owner_name_unique DO NOTHING RETURNING {_COLUMNS}",
        watchlist_id,
        owner_id,
        name,
        list(tickers),
    )
    return _watchlist(row) if row is not None else None


async def update(
    conn: asyncpg.Connection, watchlist_id: UUID, *, name: str, tickers: Sequence[str]
) -> Watchlist | None:
    """The list with its new name and tickers (version bumped); None if the name is taken."""
    try:
        async with conn.transaction():  # a savepoint: a taken name must not end the request's
            row = await conn.fetchrow(
                "UPDATE watchlists SET name = $2, tickers = $3, version = version + 1,"
                f" updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
                watchlist_id,
                name,
                list(tickers),
            )
    except asyncpg.UniqueViolationError:
        return None
    return _watchlist(row) if row is not None else None


async def delete(conn: asyncpg.Connection, watchlist_id: UUID) -> None:
    await conn.execute("DELETE FROM watchlists WHERE id = $1", watchlist_id)
