"""Securities and their latest quotes: listing with filters, sorting and keyset pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.market.domain import SORTABLE, Quote, Security, StockFilter

_SECURITY_COLUMNS = (
    "s.ticker, s.name, s.exchange, s.sector, s.industry, s.currency, s.status,"
    " s.shares_outstanding, s.data_source, s.security_id, s.listed_on, s.delisted_on"
)
_QUOTE_COLUMNS = (
    "q.price, q.previous_close, q.volume, q.updated_at, q.day_open, q.day_high, q.day_low"
)

# Sortable and filterable expressions, by API name (never interpolate anything else).
SORT_EXPRESSIONS: dict[str, str] = {
    "ticker": "s.ticker",
    "name": "s.name",
    "price": "q.price",
    "change_percent": "(q.price / NULLIF(q.previous_close, 0) - 1) * 100",
    "volume": "q.volume::double precision",
    "market_cap": "q.price * s.shares_outstanding",
    # Fundamentals (fundamental_metrics, refreshed by every facts import) at the live price.
    "pe_ratio": "(q.price / CASE WHEN f.eps_ttm > 0 THEN f.eps_ttm END)",
    "dividend_yield": "(f.dividends_ttm / q.price)",
}
_TEXT_SORTS = frozenset({"ticker", "name"})
assert set(SORT_EXPRESSIONS) == set(SORTABLE)


def security_from(row: asyncpg.Record) -> Security:
    return Security(
        ticker=row["ticker"],
        name=row["name"],
        exchange=row["exchange"],
        sector=row["sector"],
        industry=row["industry"],
        currency=row["currency"],
        status=row["status"],
        shares_outstanding=row["shares_outstanding"],
        data_source=row["data_source"],
        security_id=row["security_id"],
        listed_on=row["listed_on"],
        delisted_on=row["delisted_on"],
    )


def quote_from(row: asyncpg.Record) -> Quote | None:
    if row["price"] is None:
        return None
    return Quote(
        ticker=row["ticker"],
        price=row["price"],
        previous_close=row["previous_close"],
        volume=row["volume"],
        updated_at=row["updated_at"],
        day_open=row["day_open"],
        day_high=row["day_high"],
        day_low=row["day_low"],
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_securities(
    conn: asyncpg.Connection,
    *,
    limit: int,
    filters: StockFilter,
    sort: str = "ticker",
    descending: bool = False,
    after: tuple[Any, str] | None = None,
) -> list[tuple[Security, Quote | None, Any]]:
    """Securities with their quote, ordered by ``sort`` then ticker, after the keyset
    position ``after`` = (sort value, ticker). Returns (security, quote, sort value)."""
    expression = SORT_EXPRESSIONS[sort]
    if sort not in _TEXT_SORTS:
        # Securities without a quote sort last in either direction.
        expression = f"COALESCE({expression}, {'-1e300' if descending else '1e300'})"
    conditions = ["TRUE"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, value in (
        ("s.sector", filters.sector),
        ("s.industry", filters.industry),
        ("s.exchange", filters.exchange),
    ):
        if value is not None:
            conditions.append(f"{column} = {arg(value)}")
    if filters.search is not None:
        prefix = arg(_escape_like(filters.search) + "%")
        contains = arg("%" + _escape_like(filters.search) + "%")
        conditions.append(f"(s.ticker ILIKE {prefix} OR s.name ILIKE {contains})")
    for name, low, high in filters.ranges:
        column = SORT_EXPRESSIONS[name]
        if low is not None:
            conditions.append(f"{column} >= {arg(low)}")
        if high is not None:
            conditions.append(f"{column} <= {arg(high)}")
    if after is not None:
        op = "<" if descending else ">"
        conditions.append(f"({expression}, s.ticker) {op} ({arg(after[0])}, {arg(after[1])})")
    direction = "DESC" if descending else "ASC"
    rows = await conn.fetch(
        f"SELECT {_SECURITY_COLUMNS}, {_QUOTE_COLUMNS}, {expression} AS sort_value"
        " FROM securities s LEFT JOIN latest_quotes q USING (ticker)"
        " LEFT JOIN fundamental_metrics f ON f.security_id = s.security_id"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY {expression} {direction}, s.ticker {direction} LIMIT {arg(limit)}",
        *args,
    )
    return [(security_from(row), quote_from(row), row["sort_value"]) for row in rows]


async def get_security(
    conn: asyncpg.Connection, ticker: str
) -> tuple[Security, Quote | None] | None:
    row = await conn.fetchrow(
        f"SELECT {_SECURITY_COLUMNS}, {_QUOTE_COLUMNS}"
        " FROM securities s LEFT JOIN latest_quotes q USING (ticker) WHERE s.ticker = $1",
        ticker,
    )
    return (security_from(row), quote_from(row)) if row is not None else None


async def security_ids(
    conn: asyncpg.Connection, tickers: list[str] | None = None
) -> dict[str, int]:
    """Ticker → security id, for ``tickers`` (or every security)."""
    if tickers is None:
        rows = await conn.fetch("SELECT ticker, security_id FROM securities")
    else:
        rows = await conn.fetch(
            "SELECT ticker, security_id FROM securities WHERE ticker = ANY($1::text[])", tickers
        )
    return {row["ticker"]: row["security_id"] for row in rows}


async def count_securities(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM securities")
    return count


async def insert_securities(conn: asyncpg.Connection, securities: list[Security]) -> dict[str, int]:
    """Insert (or update) ``securities`` in one statement; return ticker → security id."""
    rows = await conn.fetch(
        "INSERT INTO securities (ticker, name, exchange, sector, industry, currency, status,"
        " shares_outstanding, data_source, listed_on, delisted_on)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::bigint[], $9::text[], $10::date[], $11::date[])"
        " ON CONFLICT (ticker) DO UPDATE SET name = EXCLUDED.name, exchange = EXCLUDED.exchange,"
        " sector = EXCLUDED.sector, industry = EXCLUDED.industry, currency = EXCLUDED.currency,"
        " status = EXCLUDED.status,"
        " shares_outstanding ="
        " COALESCE(EXCLUDED.shares_outstanding, securities.shares_outstanding),"
        " data_source = EXCLUDED.data_source,"
        " listed_on = COALESCE(EXCLUDED.listed_on, securities.listed_on),"
        " delisted_on = EXCLUDED.delisted_on"
        " RETURNING ticker, security_id",
        [s.ticker for s in securities],
        [s.name for s in securities],
        [s.exchange for s in securities],
        [s.sector for s in securities],
        [s.industry for s in securities],
        [s.currency for s in securities],
        [s.status for s in securities],
        [s.shares_outstanding for s in securities],
        [s.data_source for s in securities],
        [s.listed_on for s in securities],
        [s.delisted_on for s in securities],
    )
    return {row["ticker"]: row["security_id"] for row in rows}


async def set_shares_outstanding(
    conn: asyncpg.Connection, security_ids: list[int], shares: list[int]
) -> None:
    await conn.execute(
        "UPDATE securities s SET shares_outstanding = u.shares"
        " FROM unnest($1::int[], $2::bigint[]) AS u(security_id, shares)"
        " WHERE s.security_id = u.security_id",
        security_ids,
        shares,
    )


async def upsert_security(conn: asyncpg.Connection, security: Security) -> int:
    return (await insert_securities(conn, [security]))[security.ticker]


async def sectors_and_industries(conn: asyncpg.Connection) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(
        "SELECT sector, industry, count(*) AS n FROM securities GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [(r["sector"], r["industry"], r["n"]) for r in rows]


async def listing_window(conn: asyncpg.Connection, ticker: str) -> tuple[date | None, date | None]:
    row = await conn.fetchrow(
        "SELECT listed_on, delisted_on FROM securities WHERE ticker = $1", ticker
    )
    return (row["listed_on"], row["delisted_on"]) if row else (None, None)


@dataclass(frozen=True, slots=True)
class Listing:
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    status: str
    data_source: str


async def listings(
    conn: asyncpg.Connection, *, listed_only: bool, after: str | None, limit: int
) -> list[Listing]:
    """Up to ``limit`` securities by ticker, after ``after`` (keyset: the primary key)."""
    rows = await conn.fetch(
        "SELECT ticker, name, exchange, sector, industry, status, data_source FROM securities"
        " WHERE ($1::text IS NULL OR ticker > $1) AND (NOT $2 OR status = 'listed')"
        " ORDER BY ticker LIMIT $3",
        after,
        listed_only,
        limit,
    )
    return [Listing(*r) for r in rows]
