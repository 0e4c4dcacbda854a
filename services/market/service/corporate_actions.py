"""Recording corporate actions: every writer of ``corporate_actions`` goes through here,
so each action written (new, or with a changed value) is announced as
``market.actions.recorded`` in the same transaction (the outbox), and other contexts
(portfolio's splits) learn of it exactly when it is committed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import asyncpg

from services.market import events
from services.market.repository import actions as actions_repo
from shared.messaging import enqueue


async def announce(
    conn: asyncpg.Connection, written: Iterable[tuple[str, date, str, float, str]]
) -> int:
    """Queue ``market.actions.recorded`` for actions written in ``conn``'s transaction,
    given as (ticker, ex_date, kind, value, data_source); how many events were queued."""
    actions = [
        events.RecordedAction.model_validate(
            {
                "ticker": ticker,
                "ex_date": ex_date,
                "kind": kind,
                "value": value,
                "data_source": source,
            }
        )
        for ticker, ex_date, kind, value, source in written
    ]
    queued = events.actions_events(actions)
    for event in queued:
        await enqueue(conn, events.ACTIONS_RECORDED, event)
    return len(queued)


async def record_actions(
    conn: asyncpg.Connection, rows: list[tuple[int, date, str, float]], data_source: str
) -> int:
    """Write actions (security id, ex_date, kind, value) and announce those that are new
    or changed, in ``conn``'s transaction (the caller's); how many were written."""
    written = await actions_repo.write_actions(conn, rows, data_source)
    await announce(conn, ((t, d, k, v, data_source) for t, d, k, v in written))
    return len(written)
