"""Use cases of the recommendations service."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from services.recommendations import repository
from services.recommendations.domain import Action, Recommendation
from shared.pagination import InvalidCursorError, decode_cursor, encode_cursor


async def list_recommendations(
    pool: asyncpg.Pool,
    *,
    limit: int,
    cursor: str | None,
    action: Action | None,
    ticker: str | None,
) -> tuple[list[Recommendation], str | None]:
    after = None
    if cursor:
        position = decode_cursor(cursor, keys=("published_at", "id"))
        try:
            after = (datetime.fromisoformat(position["published_at"]), UUID(position["id"]))
        except (TypeError, ValueError):
            raise InvalidCursorError() from None
    async with pool.acquire() as conn:
        rows = await repository.list_recommendations(
            conn, limit=limit + 1, after=after, action=action, ticker=ticker
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            {"published_at": last.published_at.isoformat(), "id": str(last.id)}
        )
    return rows, next_cursor
