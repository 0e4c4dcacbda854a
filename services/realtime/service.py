"""Use cases of the realtime service's alert rules, each scoped to the caller."""

from __future__ import annotations

import uuid

import asyncpg

from services.realtime import repository
from services.realtime.domain import AlertRule
from services.realtime.errors import AlertRuleNotFoundError, AlertRuleQuotaError
from services.realtime.schemas import AlertRuleCreate

MAX_RULES_PER_USER = 100


async def list_rules(pool: asyncpg.Pool, owner_id: str) -> list[AlertRule]:
    async with pool.acquire() as conn:
        return await repository.list_for_owner(conn, owner_id)


async def create_rule(pool: asyncpg.Pool, owner_id: str, data: AlertRuleCreate) -> AlertRule:
    async with pool.acquire() as conn, conn.transaction():
        # Serialise one owner's creations so the quota cannot be overrun by a burst.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"alert-rules:{owner_id}")
        if await repository.count_for_owner(conn, owner_id) >= MAX_RULES_PER_USER:
            raise AlertRuleQuotaError(
                f"You can keep at most {MAX_RULES_PER_USER} alert rules.",
                details={"limit": MAX_RULES_PER_USER},
            )
        return await repository.insert(
            conn,
            rule_id=uuid.uuid4(),
            owner_id=owner_id,
            ticker=data.ticker,
            condition=data.condition,
            threshold=data.threshold,
        )


async def delete_rule(pool: asyncpg.Pool, owner_id: str, rule_id: uuid.UUID) -> None:
    async with pool.acquire() as conn:
        if not await repository.delete_owned(conn, rule_id, owner_id):
            # Another user's rule is indistinguishable from a missing one.
            raise AlertRuleNotFoundError(f"No alert rule {rule_id}.")
