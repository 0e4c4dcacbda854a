"""Latest quotes: one row per security, kept current by the feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg


@dataclass(frozen=True)
class QuoteRow:
    ticker: str
    price: float
    previous_close: float | None
    volume: int
    updated_at: datetime
    session: date | None
    day_open: float | None
    day_high: float | None
    day_low: float | None


_COLUMNS = "ticker, price, previous_close, volume, updated_at, session, day_open, day_high, day_low"


def _row(r: asyncpg.Record) -> QuoteRow:
    return QuoteRow(
        r["ticker"],
        r["price"],
        r["previous_close"],
        r["volume"],
        r["updated_at"],
        r["session"],
        r["day_open"],
        r["day_high"],
        r["day_low"],
    )


@dataclass(frozen=True)
class QuoteColumns:
    """Every latest quote as columns (one list per field, aligned, in no order)."""

    ticker: list[str]
    price: list[float]
    previous_close: list[float | None]
    volume: list[int]
    ts: list[int]  # epoch milliseconds of the quote

    def __len__(self) -> int:
        return len(self.ticker)


async def all_quotes(conn: asyncpg.Connection) -> QuoteColumns:
    """Every latest quote: one scan of a narrow table (no bars), returned as one row of
    arrays, which asyncpg decodes several times faster than 6,000 records; no sort and
    no datetime objects (the time travels as epoch milliseconds)."""
    row = await conn.fetchrow(
        "SELECT array_agg(ticker), array_agg(price), array_agg(previous_close),"
        " array_agg(volume), array_agg((extract(epoch FROM updated_at) * 1000)::bigint)"
        " FROM latest_quotes"
    )
    if row is None or row[0] is None:
        return QuoteColumns([], [], [], [], [])
    return QuoteColumns(row[0], row[1], row[2], row[3], row[4])


async def quotes_for(conn: asyncpg.Connection, tickers: list[str]) -> list[QuoteRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM latest_quotes WHERE ticker = ANY($1::text[]) ORDER BY ticker",
        tickers,
    )
    return [_row(r) for r in rows]


async def quotes_with_sectors(
    conn: asyncpg.Connection, tickers: list[str]
) -> list[tuple[QuoteRow, str]]:
    """The latest quotes of ``tickers`` with each security's sector (a primary-key join)."""
    rows = await conn.fetch(
        "SELECT q.ticker, q.price, q.previous_close, q.volume, q.updated_at, q.session,"
        " q.day_open, q.day_high, q.day_low, s.sector"
        " FROM latest_quotes q JOIN securities s USING (ticker)"
        " WHERE q.ticker = ANY($1::text[]) ORDER BY q.ticker",
        tickers,
    )
    return [(_row(r), r["sector"]) for r in rows]


async def write_quotes(conn: asyncpg.Connection, quotes: list[QuoteRow]) -> None:
    """Insert or overwrite ``quotes`` in one statement."""
    if not quotes:
        return
    await conn.execute(
        f"INSERT INTO latest_quotes ({_COLUMNS})"
        " SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::bigint[],"
        " $5::timestamptz[], $6::date[], $7::float8[], $8::float8[], $9::float8[])"
        " ON CONFLICT (ticker) DO UPDATE SET price = EXCLUDED.price,"
        " previous_close = EXCLUDED.previous_close, volume = EXCLUDED.volume,"
        " updated_at = EXCLUDED.updated_at, session = EXCLUDED.session,"
        " day_open = EXCLUDED.day_open, day_high = EXCLUDED.day_high, day_low = EXCLUDED.day_low",
        [q.ticker for q in quotes],
        [q.price for q in quotes],
        [q.previous_close for q in quotes],
        [q.volume for q in quotes],
        [q.updated_at for q in quotes],
        [q.session for q in quotes],
        [q.day_open for q in quotes],
        [q.day_high for q in quotes],
        [q.day_low for q in quotes],
    )


async def quotes_from_bars(
    conn: asyncpg.Connection, day: date, security_ids: list[int] | None = None
) -> int:
    """Set every security's quote (or only those of ``security_ids``) from its last bar on
    or before ``day`` (and the bar before it as previous close, restated for a split that
    goes ex on the last bar's day, so that the day's change is not the split): after a
    load, before any tick; after a provider's session, for the securities it covers."""
    status: str = await conn.execute(
        "INSERT INTO latest_quotes (ticker, price, previous_close, volume, updated_at, session,"
        " day_open, day_high, day_low)"
        " SELECT s.ticker, b.close,"
        " p.close / COALESCE((SELECT a.value FROM corporate_actions a"
        "   WHERE a.security_id = s.security_id AND a.ex_date = b.day AND a.kind = 'split'), 1),"
        " b.volume,"
        " (b.day + time '16:00') AT TIME ZONE 'America/New_York', b.day, b.open, b.high, b.low"
        " FROM securities s"
        " CROSS JOIN LATERAL (SELECT * FROM daily_bars d WHERE d.security_id = s.security_id"
        "   AND d.day <= $1 ORDER BY d.day DESC LIMIT 1) b"
        " LEFT JOIN LATERAL (SELECT close FROM daily_bars d WHERE d.security_id = s.security_id"
        "   AND d.day < b.day ORDER BY d.day DESC LIMIT 1) p ON TRUE"
        " WHERE $2::int[] IS NULL OR s.security_id = ANY($2::int[])"
        " ON CONFLICT (ticker) DO UPDATE SET price = EXCLUDED.price,"
        " previous_close = EXCLUDED.previous_close, volume = EXCLUDED.volume,"
        " updated_at = EXCLUDED.updated_at, session = EXCLUDED.session,"
        " day_open = EXCLUDED.day_open, day_high = EXCLUDED.day_high, day_low = EXCLUDED.day_low",
        day,
        security_ids,
    )
    return int(status.split()[-1])


async def session_quotes(
    conn: asyncpg.Connection, session: date
) -> list[tuple[int, float, float, float, float, int]]:
    """(security id, open, high, low, close, volume) of the quotes of ``session``: the bar
    the feed built during it."""
    rows = await conn.fetch(
        "SELECT s.security_id, q.day_open, q.day_high, q.day_low, q.price, q.volume"
        " FROM latest_quotes q JOIN securities s USING (ticker)"
        " WHERE q.session = $1 AND q.day_open IS NOT NULL AND s.status = 'listed'",
        session,
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


_SNAPSHOT = """
WITH q AS (
    SELECT ticker, price, COALESCE(NULLIF(previous_close, 0), price) AS previous, volume,
           (extract(epoch FROM updated_at) * 1000)::bigint AS ts
    FROM latest_quotes
)
INSERT INTO quote_snapshot (id, as_of, count, body)
SELECT 1, COALESCE(max(ts), 0), count(*), convert_to(json_build_object(
    'as_of', COALESCE(max(ts), 0),
    'count', count(*),
    'quotes', COALESCE(json_agg(json_build_object(
        'ticker', ticker,
        'price', round(price::numeric, 4),
        'previous_close', round(previous::numeric, 4),
        'change', round((price - previous)::numeric, 4),
        'change_percent', round(((price / previous - 1) * 100)::numeric, 4),
        'volume', volume,
        'ts', ts) ORDER BY ticker COLLATE "C"), '[]'::json))::text, 'UTF8')
FROM q
ON CONFLICT (id) DO UPDATE SET as_of = EXCLUDED.as_of, count = EXCLUDED.count,
    body = EXCLUDED.body
"""


async def rebuild_snapshot(conn: asyncpg.Connection) -> None:
    """Re-encode every latest quote into ``quote_snapshot`` (call it in the transaction
    that changed ``latest_quotes``)."""
    await conn.execute(_SNAPSHOT)


async def read_snapshot(conn: asyncpg.Connection) -> bytes | None:
    """The pre-encoded snapshot of every latest quote (None before the first build)."""
    body: bytes | None = await conn.fetchval("SELECT body FROM quote_snapshot WHERE id = 1")
    return body
