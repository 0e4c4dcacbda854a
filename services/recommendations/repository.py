"""Every SQL statement of the recommendations service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.recommendations.domain import Action, Recommendation

_COLUMNS = (
    "id, run_id, ticker, action, confidence, price_at_call, target_price, rationale,"
    " disclosure, published_at"
)


def _recommendation(row: asyncpg.Record) -> Recommendation:
    return Recommendation(
        id=row["id"],
        run_id=row["run_id"],
        ticker=row["ticker"],
        action=Action(row["action"]),
        confidence=row["confidence"],
        price_at_call=row["price_at_call"],
        target_price=row["target_price"],
        rationale=row["rationale"],
        disclosure=row["disclosure"],
        published_at=row["published_at"],
    )


async def list_recommendations(
    conn: asyncpg.Connection,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    action: Action | None,
    ticker: str | None,
) -> list[Recommendation]:
    """Newest first, after the keyset position ``(published_at, id)``."""
    conditions = ["TRUE"]
    args: list[Any] = []
    if after is not None:
        args.extend(after)
        conditions.append(f"(published_at, id) < (${len(args) - 1}, ${len(args)})")
    if action is not None:
        args.append(action.value)
        conditions.append(f"action = ${len(args)}")
    if ticker is not None:
        args.append(ticker)
        conditions.append(f"ticker = ${len(args)}")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM recommendations WHERE {' AND '.join(conditions)}"
        f" ORDER BY published_at DESC, id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_recommendation(row) for row in rows]


async def insert_run(
    conn: asyncpg.Connection, run_id: UUID, *, model_version: str, as_of: date
) -> None:
    await conn.execute(
        "INSERT INTO runs (id, status, model_version, as_of, completed_at)"
        " VALUES ($1, 'completed', $2, $3, now()) ON CONFLICT (id) DO NOTHING",
        run_id,
        model_version,
        as_of,
    )


async def insert_recommendation(conn: asyncpg.Connection, rec: Recommendation) -> None:
    await conn.execute(
        f"INSERT INTO recommendations ({_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        rec.id,
        rec.run_id,
        rec.ticker,
        rec.action.value,
        rec.confidence,
        rec.price_at_call,
        rec.target_price,
        rec.rationale,
        rec.disclosure,
        rec.published_at,
    )


async def run_exists(conn: asyncpg.Connection, run_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)", run_id))


async def latest_actions(
    conn: asyncpg.Connection, tickers: list[str], *, excluding_run: UUID
) -> dict[str, Action]:
    """Each ticker's most recent published action outside ``excluding_run``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (ticker) ticker, action FROM recommendations"
        " WHERE ticker = ANY($1::text[]) AND run_id <> $2"
        " ORDER BY ticker, published_at DESC, id DESC",
        tickers,
        excluding_run,
    )
    return {row["ticker"]: Action(row["action"]) for row in rows}
