"""What market answers about its securities over NATS: the universe (``market.rpc.universe``)
and latest quotes with each security's sector (``market.rpc.quotes``).

Other contexts read listing data only through these replies (never market's schema): the
recommendation engine its universe with sectors and provenance, portfolio its positions'
prices and sectors in the one request it already makes per valuation.
"""

from __future__ import annotations

import asyncpg

from services.market import events
from services.market.repository import quotes, securities
from services.market.service.market import quote_payload

# A listing's JSON beyond its strings' lengths (keys, quotes, commas): a generous bound.
_LISTING_OVERHEAD = 110


async def quotes_reply(pool: asyncpg.Pool, tickers: list[str]) -> events.QuotesReply:
    wanted = list(dict.fromkeys(t.upper() for t in tickers))
    async with pool.acquire() as conn:
        rows = await quotes.quotes_with_sectors(conn, wanted)
    found = {q.ticker for q, _ in rows}
    return events.QuotesReply(
        quotes=[events.Quote(**quote_payload(q), sector=sector) for q, sector in rows],
        missing=[t for t in wanted if t not in found],
    )


async def universe_reply(
    pool: asyncpg.Pool, request: events.UniverseRequest, *, budget_bytes: int
) -> events.UniverseReply:
    """The securities after ``request.cursor``, by ticker, as many as fit in
    ``budget_bytes`` (at least one)."""
    limit = max(1, budget_bytes // (_LISTING_OVERHEAD + 20))
    async with pool.acquire() as conn:
        rows = await securities.listings(
            conn, listed_only=request.listed_only, after=request.cursor, limit=limit + 1
        )
    page: list[events.Listing] = []
    size = 0
    for row in rows[:limit]:
        size += _LISTING_OVERHEAD + sum(
            len(v.encode()) for v in (row.ticker, row.name, row.exchange, row.sector)
        )
        size += len(row.industry.encode()) + len(row.status) + len(row.data_source.encode())
        if page and size > budget_bytes:
            break
        page.append(
            events.Listing(
                ticker=row.ticker,
                name=row.name,
                exchange=row.exchange,
                sector=row.sector,
                industry=row.industry,
                status=row.status,
                data_source=row.data_source,
            )
        )
    more = len(page) < len(rows)
    return events.UniverseReply(securities=page, next_cursor=page[-1].ticker if more else None)
