"""Use cases of the market service. No FastAPI here; raises domain errors."""

from __future__ import annotations

import asyncpg

from services.market import repository
from services.market.domain import Quote, Security
from services.market.errors import StockNotFoundError
from shared.pagination import decode_cursor, encode_cursor


async def list_stocks(
    pool: asyncpg.Pool,
    *,
    limit: int,
    cursor: str | None,
    sector: str | None,
    search: str | None,
) -> tuple[list[tuple[Security, Quote | None]], str | None]:
    """One page of securities and the cursor of the next page (None on the last)."""
    after = decode_cursor(cursor, keys=("ticker",))["ticker"] if cursor else None
    async with pool.acquire() as conn:
        rows = await repository.list_securities(
            conn, limit=limit + 1, after=after, sector=sector, search=search
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"ticker": rows[-1][0].ticker})
    return rows, next_cursor


async def get_stock(pool: asyncpg.Pool, ticker: str) -> tuple[Security, Quote | None]:
    async with pool.acquire() as conn:
        found = await repository.get_security(conn, ticker)
    if found is None:
        raise StockNotFoundError(ticker)
    return found
