"""Use cases of the portfolio service. Every use case is scoped to the caller and takes
the request's connection (in the transaction the request owns)."""

from __future__ import annotations

import uuid

import asyncpg

from services.portfolio import repository
from services.portfolio.domain import Portfolio
from services.portfolio.errors import PortfolioNameTakenError
from services.portfolio.schemas import PortfolioCreate


async def list_portfolios(conn: asyncpg.Connection, owner_id: str) -> list[Portfolio]:
    return await repository.list_for_owner(conn, owner_id)


async def create_portfolio(
    conn: asyncpg.Connection, owner_id: str, data: PortfolioCreate
) -> Portfolio:
    created = await repository.insert(
        conn,
        portfolio_id=uuid.uuid4(),
        owner_id=owner_id,
        name=data.name,
        base_currency=data.base_currency,
        cash=data.cash,
    )
    if created is None:
        raise PortfolioNameTakenError(
            f"You already have a portfolio named {data.name!r}.", details={"name": data.name}
        )
    return created
