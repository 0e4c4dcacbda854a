"""What the live feed starts from: the simulated, listed securities with their last close,
volatility, average volume and current quote."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

FEED_LOCK = "bourse.market.feed"


async def try_lead(conn: asyncpg.Connection) -> bool:
    """Take the session-level lock only the replica running the feed holds."""
    got: bool = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", FEED_LOCK)
    return got


async def stop_leading(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", FEED_LOCK)


@dataclass(frozen=True)
class FeedSecurity:
    security_id: int
    ticker: str
    close: float  # the last stored close (or the quote when there is no bar yet)
    daily_vol: float
    avg_volume: float
    price: float
    previous_close: float | None
    volume: int
    session: date | None
    day_open: float | None
    day_high: float | None
    day_low: float | None


async def simulated_universe(conn: asyncpg.Connection) -> list[FeedSecurity]:
    rows = await conn.fetch(
        "SELECT s.security_id, s.ticker, COALESCE(t.close, q.price) AS close,"
        " COALESCE(t.daily_volatility, 0.02) AS daily_vol,"
        " COALESCE(t.avg_volume_30d, 100000) AS avg_volume, q.price, q.previous_close,"
        " q.volume, q.session, q.day_open, q.day_high, q.day_low"
        " FROM securities s JOIN latest_quotes q USING (ticker)"
        " LEFT JOIN security_stats t USING (security_id)"
        " WHERE s.data_source = 'simulated' AND s.status = 'listed' ORDER BY s.ticker"
    )
    return [FeedSecurity(*r) for r in rows]
