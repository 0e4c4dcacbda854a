"""Every SQL statement of the portfolio service."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import asyncpg

from services.portfolio.domain import Portfolio

_COLUMNS = "id, owner_id, name, base_currency, cash, version, created_at"


def _portfolio(row: asyncpg.Record) -> Portfolio:
    return Portfolio(**dict(row))


async def list_for_owner(conn: asyncpg.Connection, owner_id: str) -> list[Portfolio]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM portfolios WHERE owner_id = $1 ORDER BY created_at, id",
        owner_id,
    )
    return [_portfolio(row) for row in rows]


async def insert(
    conn: asyncpg.Connection,
    *,
    portfolio_id: UUID,
    owner_id: str,
    name: str,
    base_currency: str,
    cash: Decimal,
) -> Portfolio | None:
    """The new portfolio, or None if the owner already has one with that name."""
    row = await conn.fetchrow(
        "INSERT INTO portfolios (id, owner_id, name, base_currency, cash)"
        " VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT ON CONSTRAINT portfolios_owner_name_unique DO NOTHING RETURNING {_COLUMNS}",
        portfolio_id,
        owner_id,
        name,
        base_currency,
        cash,
    )
    return _portfolio(row) if row is not None else None
