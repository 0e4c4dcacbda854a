"""The read model of the recommendations context's latest live run: the run held
(``recommendation_run``, one row) and its calls (``recommendation_calls``)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.market.domain.model_view import HeldRun, ModelCall, RunStamp

_CALL_COLUMNS = (
    "ticker",
    "run_id",
    "recommendation_id",
    "action",
    "confidence",
    "score",
    "target_price",
    "price_at_call",
    "horizon_days",
    "factors",
    "thesis",
    "risk_factors",
    "methodology_disclosure",
    "data_sources",
)


def _uuid(value: UUID) -> UUID:
    # asyncpg's own UUID class, which orjson does not encode.
    return UUID(bytes=value.bytes)


def _held(row: asyncpg.Record | None) -> HeldRun | None:
    if row is None or row["run_id"] is None:
        return None
    return HeldRun(
        RunStamp(_uuid(row["run_id"]), row["as_of"], row["generated_at"]),
        row["model_version"],
        row["calls"],
        row["refreshed_at"],
    )


async def held_run(conn: asyncpg.Connection) -> HeldRun | None:
    """The run the read model holds, or None before the first."""
    row = await conn.fetchrow(
        "SELECT run_id, as_of, generated_at, model_version, calls, refreshed_at"
        " FROM recommendation_run WHERE id = 1"
    )
    return _held(row)


async def view_of(conn: asyncpg.Connection, ticker: str) -> tuple[HeldRun | None, ModelCall | None]:
    """The held run and ``ticker``'s call in it (one statement: one snapshot of both)."""
    row = await conn.fetchrow(
        "SELECT r.run_id, r.as_of, r.generated_at, r.model_version, r.calls, r.refreshed_at,"
        " c.ticker, c.recommendation_id, c.action, c.confidence, c.score, c.target_price,"
        " c.price_at_call, c.horizon_days, c.factors, c.thesis, c.risk_factors,"
        " c.methodology_disclosure, c.data_sources"
        " FROM recommendation_run r"
        " LEFT JOIN recommendation_calls c ON c.run_id = r.run_id AND c.ticker = $1"
        " WHERE r.id = 1",
        ticker,
    )
    held = _held(row)
    if row is None or held is None or row["ticker"] is None:
        return held, None
    return held, ModelCall(
        ticker=row["ticker"],
        recommendation_id=_uuid(row["recommendation_id"]),
        action=row["action"],
        confidence=row["confidence"],
        score=row["score"],
        target_price=row["target_price"],
        price_at_call=row["price_at_call"],
        horizon_days=row["horizon_days"],
        factors=row["factors"],
        thesis=row["thesis"],
        risk_factors=list(row["risk_factors"]),
        methodology_disclosure=row["methodology_disclosure"],
        data_sources=list(row["data_sources"]),
    )


async def replace_if_newer(
    conn: asyncpg.Connection, stamp: RunStamp, model_version: str, calls: Sequence[ModelCall]
) -> bool:
    """Replace the held run and all its calls with ``stamp``'s, if it supersedes the held
    one; False (nothing written) otherwise. In the caller's transaction: the run row is
    locked first, so concurrent refreshes (two replicas) take turns and the second finds
    the run already held; readers see the old run or the new one, never a mix."""
    row = await conn.fetchrow(
        "SELECT run_id, as_of, generated_at, model_version, calls, refreshed_at"
        " FROM recommendation_run WHERE id = 1 FOR UPDATE"
    )
    held = _held(row)
    if not stamp.supersedes(held.stamp if held is not None else None):
        return False
    await conn.execute("DELETE FROM recommendation_calls")
    # executemany, not COPY: COPY is binary and the pool's jsonb codec is text.
    await conn.executemany(
        f"INSERT INTO recommendation_calls ({', '.join(_CALL_COLUMNS)})"
        f" VALUES ({', '.join(f'${i}' for i in range(1, len(_CALL_COLUMNS) + 1))})",
        [
            (
                c.ticker,
                stamp.run_id,
                c.recommendation_id,
                c.action,
                c.confidence,
                c.score,
                c.target_price,
                c.price_at_call,
                c.horizon_days,
                c.factors,
                c.thesis,
                c.risk_factors,
                c.methodology_disclosure,
                c.data_sources,
            )
            for c in calls
        ],
    )
    await conn.execute(
        "UPDATE recommendation_run SET run_id = $1, as_of = $2, generated_at = $3,"
        " model_version = $4, calls = $5, refreshed_at = now() WHERE id = 1",
        stamp.run_id,
        stamp.as_of,
        stamp.generated_at,
        model_version,
        len(calls),
    )
    return True
