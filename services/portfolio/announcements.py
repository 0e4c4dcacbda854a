"""Queuing the portfolio's events in the outbox, in the transaction of the change they
report (``services/portfolio/events.py`` has the subjects and payloads): committed with
it, or never sent."""

from __future__ import annotations

import asyncpg

from services.portfolio import events
from services.portfolio.domain import Entry, Portfolio
from shared.messaging import enqueue


async def portfolio_created(conn: asyncpg.Connection, portfolio: Portfolio) -> None:
    await enqueue(conn, events.PORTFOLIO_CREATED, events.created(portfolio))


async def entries_written(
    conn: asyncpg.Connection, portfolio: Portfolio, entries: list[Entry]
) -> None:
    """``entries`` as written in one change, ``portfolio`` as it is after it: reversals
    each as ``portfolio.transaction.reversed``, the others together as
    ``portfolio.transactions.recorded``."""
    for entry in entries:
        if entry.reverses is not None:
            await enqueue(conn, events.TRANSACTION_REVERSED, events.reversed_(portfolio, entry))
    for event in events.recorded(portfolio, [e for e in entries if e.reverses is None]):
        await enqueue(conn, events.TRANSACTIONS_RECORDED, event)


async def holding_flagged(conn: asyncpg.Connection, payload: events.HoldingFlagged) -> None:
    await enqueue(conn, events.HOLDING_FLAGGED, events.flagged(payload))
