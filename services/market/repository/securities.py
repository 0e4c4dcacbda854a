"""Every SQL statement of the market service. Functions take a connection and
return domain values, never raw records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from services.market.domain import Quote, Security

_SECURITY_COLUMNS = (
    "s.ticker, s.name, s.exchange, s.sector, s.industry, s.currency, s.status,"
    " s.shares_outstanding, s.data_source"
)
_QUOTE_COLUMNS = "q.price, q.previous_close, q.volume, q.updated_at"


def _security(row: asyncpg.Record) -> Security:
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
    )


def _quote(row: asyncpg.Record) -> Quote | None:
    if row["price"] is None:
        return None
    previous = row["previous_close"]
    return Quote(
        ticker=row["ticker"],
        price=float(row["price"]),
        previous_close=float(previous) if previous is not None else None,
        volume=row["volume"],
        updated_at=row["updated_at"],
    )


async def list_securities(
    conn: asyncpg.Connection,
    *,
    limit: int,
    after: str | None,
    sector: str | None,
    search: str | None,
) -> list[tuple[Security, Quote | None]]:
    """Securities ordered by ticker, after the keyset position ``after``."""
    conditions = ["TRUE"]
    args: list[Any] = []
    if after is not None:
        args.append(after)
        conditions.append(f"s.ticker > ${len(args)}")
    if sector is not None:
        args.append(sector)
        conditions.append(f"s.sector = ${len(args)}")
    if search is not None:
        args.append(search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        conditions.append(f"(s.ticker ILIKE ${len(args)} OR s.name ILIKE ${len(args)})")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_SECURITY_COLUMNS}, {_QUOTE_COLUMNS}"
        " FROM securities s LEFT JOIN latest_quotes q USING (ticker)"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY s.ticker LIMIT ${len(args)}",
        *args,
    )
    return [(_security(row), _quote(row)) for row in rows]


async def get_security(
    conn: asyncpg.Connection, ticker: str
) -> tuple[Security, Quote | None] | None:
    row = await conn.fetchrow(
        f"SELECT {_SECURITY_COLUMNS}, {_QUOTE_COLUMNS}"
        " FROM securities s LEFT JOIN latest_quotes q USING (ticker) WHERE s.ticker = $1",
        ticker,
    )
    return (_security(row), _quote(row)) if row is not None else None


async def upsert_security(conn: asyncpg.Connection, security: Security) -> None:
    await conn.execute(
        "INSERT INTO securities (ticker, name, exchange, sector, industry, currency, status,"
        " shares_outstanding, data_source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (ticker) DO UPDATE SET name = EXCLUDED.name, exchange = EXCLUDED.exchange,"
        " sector = EXCLUDED.sector, industry = EXCLUDED.industry, currency = EXCLUDED.currency,"
        " status = EXCLUDED.status, shares_outstanding = EXCLUDED.shares_outstanding,"
        " data_source = EXCLUDED.data_source",
        security.ticker,
        security.name,
        security.exchange,
        security.sector,
        security.industry,
        security.currency,
        security.status,
        security.shares_outstanding,
        security.data_source,
    )


async def upsert_quote(conn: asyncpg.Connection, quote: Quote) -> None:
    await conn.execute(
        "INSERT INTO latest_quotes (ticker, price, previous_close, volume, updated_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticker) DO UPDATE SET price = EXCLUDED.price,"
        " previous_close = EXCLUDED.previous_close, volume = EXCLUDED.volume,"
        " updated_at = EXCLUDED.updated_at",
        quote.ticker,
        Decimal(str(quote.price)),
        Decimal(str(quote.previous_close)) if quote.previous_close is not None else None,
        quote.volume,
        quote.updated_at,
    )
