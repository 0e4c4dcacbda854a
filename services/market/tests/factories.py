"""Plain async factories for market tests (no hidden state)."""

from __future__ import annotations

import uuid

import asyncpg

from services.market.domain import Security
from services.market.repository import securities


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
