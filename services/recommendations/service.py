"""Use cases of the recommendations service."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from services.recommendations import events, repository
from services.recommendations.domain import Action, Recommendation, Run, action_changes, chunks
from services.recommendations.schemas import RECOMMENDATIONS_CURSOR, RecommendationPosition
from shared.messaging import Event, enqueue
from shared.pagination import CursorKey


async def list_recommendations(
    conn: asyncpg.Connection,
    *,
    limit: int,
    cursor: str | None,
    cursor_key: CursorKey,
    action: Action | None,
    ticker: str | None,
) -> tuple[list[Recommendation], str | None]:
    after = None
    if cursor:
        position = RECOMMENDATIONS_CURSOR.decode(cursor_key, cursor)
        after = (position.published_at, position.id)
    rows = await repository.list_recommendations(
        conn, limit=limit + 1, after=after, action=action, ticker=ticker
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = RecommendationPosition(published_at=rows[-1].published_at, id=rows[-1].id)
        next_cursor = RECOMMENDATIONS_CURSOR.encode(cursor_key, last)
    return rows, next_cursor


async def publish_run(conn: asyncpg.Connection, run: Run) -> bool:
    """Store ``run`` and its recommendations and queue ``recommendations.run.completed``,
    all in one transaction: the event exists if and only if the run does.

    Returns False (and changes nothing) when the run was already published.
    """
    async with conn.transaction():
        if await repository.run_exists(conn, run.id):
            return False
        tickers = [rec.ticker for rec in run.recommendations]
        previous = await repository.latest_actions(conn, tickers, excluding_run=run.id)
        await repository.insert_run(conn, run.id, model_version=run.model_version, as_of=run.as_of)
        for rec in run.recommendations:
            await repository.insert_recommendation(conn, rec)
        changes = [
            events.ActionChanged(
                recommendation_id=rec.id,
                ticker=rec.ticker,
                action=rec.action.value,
                previous_action=before.value if before else None,
                confidence=float(rec.confidence),
                price_at_call=float(rec.price_at_call),
                target_price=float(rec.target_price) if rec.target_price is not None else None,
            )
            for rec, before in action_changes(run.recommendations, previous)
        ]
        parts = chunks(changes, events.MAX_CHANGES_PER_EVENT)
        published_at = max((rec.published_at for rec in run.recommendations), default=None)
        for number, part in enumerate(parts, start=1):
            payload = events.RunCompleted(
                run_id=run.id,
                as_of=run.as_of,
                model_version=run.model_version,
                published_at=published_at or datetime.now(UTC),
                total_recommendations=len(run.recommendations),
                part=number,
                parts=len(parts),
                changes=list(part),
            )
            await enqueue(
                conn,
                events.RUN_COMPLETED,
                Event[events.RunCompleted](
                    event_type=events.RUN_COMPLETED,
                    schema_version=events.RUN_COMPLETED_VERSION,
                    source=events.SOURCE,
                    data=payload,
                ),
            )
    return True
