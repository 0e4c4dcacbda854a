"""Every SQL statement of the realtime service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from services.realtime.domain import AlertRule, Condition

_COLUMNS = (
    "id, owner_id, ticker, condition, threshold, window_days, cooldown_seconds,"
    " active, armed, last_fired_at, created_at, state_tick, watchlist_id, parent_id"
)


def _rule(row: asyncpg.Record) -> AlertRule:
    values = dict(row)
    values["condition"] = Condition(values["condition"])
    values["ticker"] = values["ticker"] or ""  # a watchlist rule's own has none
    return AlertRule(**values)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    owner_id: str
    rule_id: UUID | None
    ticker: str
    condition: str
    message: str
    data: dict[str, Any]
    fired_at: datetime


_ALERT_COLUMNS = "id, owner_id, rule_id, ticker, condition, message, data, fired_at"


def _alert(row: asyncpg.Record) -> StoredAlert:
    return StoredAlert(**dict(row))


# -- rules -------------------------------------------------------------------------------


async def lock_owner_rules(conn: asyncpg.Connection, owner_id: str) -> None:
    """Serialise changes to one owner's rules until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"alert-rules:{owner_id}")


async def list_for_owner(conn: asyncpg.Connection, owner_id: str) -> list[AlertRule]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE owner_id = $1 AND parent_id IS NULL"
        " ORDER BY created_at, id",
        owner_id,
    )
    return [_rule(row) for row in rows]


async def get_owned(conn: asyncpg.Connection, rule_id: UUID, owner_id: str) -> AlertRule | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE id = $1 AND owner_id = $2 AND parent_id IS NULL",
        rule_id,
        owner_id,
    )
    return _rule(row) if row is not None else None


async def get(conn: asyncpg.Connection, rule_id: UUID) -> AlertRule | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM alert_rules WHERE id = $1", rule_id)
    return _rule(row) if row is not None else None


async def list_active(conn: asyncpg.Connection) -> list[AlertRule]:
    """Every active rule (what a node evaluates)."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM alert_rules WHERE active ORDER BY id")
    return [_rule(row) for row in rows]


async def active_for_tickers(
    conn: asyncpg.Connection, condition: Condition, tickers: list[str]
) -> list[AlertRule]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules"
        " WHERE active AND condition = $1 AND ticker = ANY($2::text[]) ORDER BY id",
        condition.value,
        tickers,
    )
    return [_rule(row) for row in rows]


async def count_for_owner(conn: asyncpg.Connection, owner_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM alert_rules WHERE owner_id = $1 AND parent_id IS NULL", owner_id
    )
    return count


async def insert(
    conn: asyncpg.Connection,
    *,
    rule_id: UUID,
    owner_id: str,
    ticker: str | None,
    condition: Condition,
    threshold: Decimal | None,
    window_days: int | None,
    cooldown_seconds: int,
    watchlist_id: UUID | None = None,
    parent_id: UUID | None = None,
    active: bool = True,
) -> AlertRule:
    """A new rule: on ``ticker``; or on a watchlist (``ticker`` None); or a watchlist
    rule's child on one of its tickers (``parent_id``)."""
    row = await conn.fetchrow(
        "INSERT INTO alert_rules (id, owner_id, ticker, condition, threshold, window_days,"
        " cooldown_seconds, watchlist_id, parent_id, active)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}",
        rule_id,
        owner_id,
        ticker,
        condition.value,
        threshold,
        window_days,
        cooldown_seconds,
        watchlist_id,
        parent_id,
        active,
    )
    assert row is not None
    return _rule(row)


async def update_owned(
    conn: asyncpg.Connection,
    rule_id: UUID,
    owner_id: str,
    *,
    threshold: Decimal | None,
    window_days: int | None,
    cooldown_seconds: int,
    active: bool,
) -> AlertRule | None:
    """Change a rule of ``owner_id``'s; a changed rule is re-armed. None if not theirs."""
    row = await conn.fetchrow(
        "UPDATE alert_rules SET threshold = $3, window_days = $4, cooldown_seconds = $5,"
        " active = $6, armed = true, updated_at = now()"
        f" WHERE id = $1 AND owner_id = $2 AND parent_id IS NULL RETURNING {_COLUMNS}",
        rule_id,
        owner_id,
        threshold,
        window_days,
        cooldown_seconds,
        active,
    )
    return _rule(row) if row is not None else None


async def delete_owned(conn: asyncpg.Connection, rule_id: UUID, owner_id: str) -> bool:
    """Delete the rule if ``owner_id`` owns it; False when there is no such rule of theirs."""
    status: str = await conn.execute(
        "DELETE FROM alert_rules WHERE id = $1 AND owner_id = $2 AND parent_id IS NULL",
        rule_id,
        owner_id,
    )
    return status == "DELETE 1"


# -- watchlist rules and realtime's copy of the watchlists ------------------------------


@dataclass(frozen=True, slots=True)
class KnownWatchlist:
    id: UUID
    owner_id: str
    tickers: tuple[str, ...]
    version: int
    deleted: bool


async def watchlist(conn: asyncpg.Connection, watchlist_id: UUID) -> KnownWatchlist | None:
    row = await conn.fetchrow(
        "SELECT id, owner_id, tickers, version, deleted FROM watchlists WHERE id = $1",
        watchlist_id,
    )
    if row is None:
        return None
    return KnownWatchlist(
        row["id"], row["owner_id"], tuple(row["tickers"]), row["version"], row["deleted"]
    )


async def store_watchlist(
    conn: asyncpg.Connection,
    *,
    watchlist_id: UUID,
    owner_id: str,
    name: str,
    tickers: list[str],
    version: int,
    deleted: bool,
) -> bool:
    """Keep this version of the watchlist if it is newer than the one known; False (and
    nothing changed) for an older or the same version. The row lock serialises
    consumers of one list."""
    stored = await conn.fetchval(
        "INSERT INTO watchlists (id, owner_id, name, tickers, version, deleted)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, tickers = EXCLUDED.tickers,"
        " version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()"
        " WHERE watchlists.version < EXCLUDED.version AND watchlists.owner_id = EXCLUDED.owner_id"
        " RETURNING true",
        watchlist_id,
        owner_id,
        name,
        tickers,
        version,
        deleted,
    )
    return bool(stored)


async def watchlist_tickers(
    conn: asyncpg.Connection, watchlist_ids: list[UUID]
) -> dict[UUID, tuple[str, ...]]:
    """The tickers each (live) watchlist holds as realtime knows it."""
    rows = await conn.fetch(
        "SELECT id, tickers FROM watchlists WHERE id = ANY($1::uuid[]) AND NOT deleted",
        watchlist_ids,
    )
    return {row["id"]: tuple(row["tickers"]) for row in rows}


async def rules_on_watchlist(conn: asyncpg.Connection, watchlist_id: UUID) -> list[AlertRule]:
    """The user-facing rules targeting ``watchlist_id`` (not their children)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE watchlist_id = $1 AND parent_id IS NULL"
        " ORDER BY id FOR UPDATE",
        watchlist_id,
    )
    return [_rule(row) for row in rows]


async def children(conn: asyncpg.Connection, parent_id: UUID) -> list[AlertRule]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE parent_id = $1 ORDER BY ticker", parent_id
    )
    return [_rule(row) for row in rows]


async def delete_children(
    conn: asyncpg.Connection, parent_id: UUID, tickers: list[str]
) -> list[UUID]:
    """Delete the children of ``parent_id`` on ``tickers``; their ids."""
    rows = await conn.fetch(
        "DELETE FROM alert_rules WHERE parent_id = $1 AND ticker = ANY($2::text[]) RETURNING id",
        parent_id,
        tickers,
    )
    return [row["id"] for row in rows]


async def update_children(
    conn: asyncpg.Connection,
    parent_id: UUID,
    *,
    threshold: Decimal | None,
    window_days: int | None,
    cooldown_seconds: int,
    active: bool,
) -> list[AlertRule]:
    """Give every child its parent's new settings (re-armed, as the parent is)."""
    rows = await conn.fetch(
        "UPDATE alert_rules SET threshold = $2, window_days = $3, cooldown_seconds = $4,"
        " active = $5, armed = true, updated_at = now()"
        f" WHERE parent_id = $1 RETURNING {_COLUMNS}",
        parent_id,
        threshold,
        window_days,
        cooldown_seconds,
        active,
    )
    return [_rule(row) for row in rows]


# -- firing ------------------------------------------------------------------------------


async def disarm_if_armed(
    conn: asyncpg.Connection, rule_id: UUID, tick_ts: int
) -> AlertRule | None:
    """Take the fire transition for the tick ``tick_ts``: only one caller (of any node)
    gets the rule back. The row lock serialises concurrent callers; the second sees
    ``armed`` false, and a tick older than the last transition changes nothing."""
    row = await conn.fetchrow(
        "UPDATE alert_rules SET armed = false, last_fired_at = now(), state_tick = $2"
        " WHERE id = $1 AND active AND armed"
        " AND (state_tick IS NULL OR state_tick <= $2)"
        " AND (last_fired_at IS NULL"
        "      OR last_fired_at + make_interval(secs => cooldown_seconds) <= now())"
        f" RETURNING {_COLUMNS}",
        rule_id,
        tick_ts,
    )
    return _rule(row) if row is not None else None


async def rearm(conn: asyncpg.Connection, rule_id: UUID, tick_ts: int) -> bool:
    """Re-arm for the tick ``tick_ts``, unless a newer tick already changed the rule."""
    status: str = await conn.execute(
        "UPDATE alert_rules SET armed = true, state_tick = $2"
        " WHERE id = $1 AND NOT armed AND (state_tick IS NULL OR state_tick <= $2)",
        rule_id,
        tick_ts,
    )
    return status == "UPDATE 1"


async def lock_owner_alerts(conn: asyncpg.Connection, owner_id: str) -> None:
    """Serialise one owner's alert writes, so their ids follow commit order (resume)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"alerts:{owner_id}")


async def insert_alert(
    conn: asyncpg.Connection,
    *,
    owner_id: str,
    rule_id: UUID,
    ticker: str,
    condition: str,
    trigger_key: str,
    message: str,
    data: dict[str, Any],
) -> StoredAlert | None:
    """Write a fired alert once; None if this rule already fired for ``trigger_key``."""
    row = await conn.fetchrow(
        "INSERT INTO alerts (owner_id, rule_id, ticker, condition, trigger_key, message, data)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" ON CONFLICT ON CONSTRAINT alerts_rule_trigger_key DO NOTHING RETURNING {_ALERT_COLUMNS}",
        owner_id,
        rule_id,
        ticker,
        condition,
        trigger_key,
        message,
        data,
    )
    return _alert(row) if row is not None else None


async def insert_holding_alert(
    conn: asyncpg.Connection,
    *,
    owner_id: str,
    ticker: str,
    trigger_key: str,
    message: str,
    data: dict[str, Any],
) -> StoredAlert | None:
    """Write a flagged-holding alert (no rule fires it) once per ``trigger_key``; None if
    it was written already."""
    row = await conn.fetchrow(
        "INSERT INTO alerts (owner_id, rule_id, ticker, condition, trigger_key, message, data)"
        " VALUES ($1, NULL, $2, 'holding_turned_sell', $3, $4, $5)"
        " ON CONFLICT (owner_id, trigger_key)"
        " WHERE rule_id IS NULL AND condition = 'holding_turned_sell' DO NOTHING"
        f" RETURNING {_ALERT_COLUMNS}",
        owner_id,
        ticker,
        trigger_key,
        message,
        data,
    )
    return _alert(row) if row is not None else None


async def alerts_after(
    conn: asyncpg.Connection, owner_id: str, after_id: int, limit: int
) -> list[StoredAlert]:
    """``owner_id``'s alerts with an id above ``after_id``, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        owner_id,
        after_id,
        limit,
    )
    return [_alert(row) for row in rows]


async def alerts_before(
    conn: asyncpg.Connection, owner_id: str, before_id: int | None, limit: int
) -> list[StoredAlert]:
    """``owner_id``'s alerts, newest first, below ``before_id`` if given."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE owner_id = $1"
        " AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        owner_id,
        before_id,
        limit,
    )
    return [_alert(row) for row in rows]
