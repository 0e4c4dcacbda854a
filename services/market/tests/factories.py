"""Plain async factories for market tests (no hidden state)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from services.market.domain import Security
from services.market.repository import securities
from shared.db.transaction import request_transaction

T = TypeVar("T")


def unique_ticker() -> str:
    """A fresh random 5-letter symbol (26^4 of them: a clash with the 40 simulated tickers
    of the test database is negligibly unlikely)."""
    letters = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[b % 26] for b in uuid.uuid4().bytes[:4])
    return "Q" + letters


async def new_security(
    conn: asyncpg.Connection, *, ticker: str | None = None, sector: str = "Industrials"
) -> tuple[str, int]:
    ticker = ticker or unique_ticker()
    ids = await securities.insert_securities(
        conn,
        [
            Security(
                ticker=ticker,
                name=f"{ticker} Test Corp.",
                exchange="NYSE",
                sector=sector,
                industry="Machinery",
                currency="USD",
                status="listed",
                shares_outstanding=1_000_000,
                data_source="test",
            )
        ],
    )
    return ticker, ids[ticker]


async def in_request(
    pool: asyncpg.Pool, use_case: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """``use_case(conn, ...)`` as a request runs it: on one connection, in a transaction
    committed at the end (:mod:`shared.db.transaction`)."""
    async with request_transaction(pool, acquire_timeout=10) as unit:
        return await use_case(await unit.connection(), *args, **kwargs)


async def in_unit(
    pool: asyncpg.Pool, use_case: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """``use_case(unit, ...)`` for use cases that take the request's unit of work."""
    async with request_transaction(pool, acquire_timeout=10) as unit:
        return await use_case(unit, *args, **kwargs)
