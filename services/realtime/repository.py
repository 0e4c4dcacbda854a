"""Every SQL statement of the realtime service."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import asyncpg

from services.realtime.domain import AlertRule, Condition

_COLUMNS = "id, owner_id, ticker, condition, threshold, active, created_at"


def _rule(row: asyncpg.Record) -> AlertRule:
    values = dict(row)
    values["condition"] = Condition(values["condition"])
    return AlertRule(**values)


async def list_for_owner(conn: asyncpg.Connection, owner_id: str) -> list[AlertRule]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE owner_id = $1 ORDER BY created_at, id",
        owner_id,
    )
    return [_rule(row) for row in rows]


async def count_for_owner(conn: asyncpg.Connection, owner_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM alert_rules WHERE owner_id = $1", owner_id
    )
    return count


async def insert(
    conn: asyncpg.Connection,
    *,
    rule_id: UUID,
    owner_id: str,
    ticker: str,
    condition: Condition,
    threshold: Decimal,
) -> AlertRule:
    row = await conn.fetchrow(
        "INSERT INTO alert_rules (id, owner_id, ticker, condition, threshold)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        rule_id,
        owner_id,
        ticker,
        condition.value,
        threshold,
    )
    assert row is not None
    return _rule(row)


async def delete_owned(conn: asyncpg.Connection, rule_id: UUID, owner_id: str) -> bool:
    """Delete the rule if ``owner_id`` owns it; False when there is no such rule of theirs."""
    status: str = await conn.execute(
        "DELETE FROM alert_rules WHERE id = $1 AND owner_id = $2", rule_id, owner_id
    )
    return status == "DELETE 1"
