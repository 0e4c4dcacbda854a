"""Corporate actions (splits, cash dividends) and their price factors."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.market.domain.adjustment import Action


def _action(r: asyncpg.Record) -> Action:
    return Action(r["ex_date"], r["kind"], r["value"], r["price_factor"])


async def actions_for(conn: asyncpg.Connection, security_id: int) -> list[Action]:
    rows = await conn.fetch(
        "SELECT ex_date, kind, value, price_factor FROM corporate_actions"
        " WHERE security_id = $1 ORDER BY ex_date",
        security_id,
    )
    return [_action(r) for r in rows]


async def actions_after(conn: asyncpg.Connection, day: date) -> dict[int, list[Action]]:
    """Every security's actions with ex_date after ``day``."""
    rows = await conn.fetch(
        "SELECT security_id, ex_date, kind, value, price_factor FROM corporate_actions"
        " WHERE ex_date > $1 ORDER BY security_id, ex_date",
        day,
    )
    result: dict[int, list[Action]] = {}
    for r in rows:
        result.setdefault(r["security_id"], []).append(_action(r))
    return result


async def splits_between(
    conn: asyncpg.Connection, start: date, end: date
) -> list[tuple[int, date, float]]:
    rows = await conn.fetch(
        "SELECT security_id, ex_date, value FROM corporate_actions"
        " WHERE kind = 'split' AND ex_date BETWEEN $1 AND $2",
        start,
        end,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def write_actions(
    conn: asyncpg.Connection,
    rows: list[tuple[int, date, str, float]],
    data_source: str,
) -> list[tuple[str, date, str, float]]:
    """Insert or update actions (security id, ex_date, kind, value); a changed value
    clears its price factor so it is computed again. Returns the rows written -- new, or
    with a changed value -- as (ticker, ex_date, kind, value); an unchanged one is not."""
    if not rows:
        return []
    written = await conn.fetch(
        "WITH written AS ("
        " INSERT INTO corporate_actions (security_id, ex_date, kind, value, data_source)"
        " SELECT u.*, $5 FROM unnest($1::int[], $2::date[], $3::text[], $4::float8[]) AS u"
        " ON CONFLICT (security_id, ex_date, kind) DO UPDATE SET value = EXCLUDED.value,"
        " data_source = EXCLUDED.data_source,"
        " price_factor = CASE WHEN corporate_actions.value = EXCLUDED.value"
        " THEN corporate_actions.price_factor END"
        " WHERE corporate_actions.value IS DISTINCT FROM EXCLUDED.value"
        " RETURNING security_id, ex_date, kind, value)"
        " SELECT s.ticker, w.ex_date, w.kind, w.value FROM written w"
        " JOIN securities s USING (security_id) ORDER BY s.ticker, w.ex_date, w.kind",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        data_source,
    )
    return [(r[0], r[1], r[2], r[3]) for r in written]


async def pending_dividends(
    conn: asyncpg.Connection,
) -> list[tuple[int, date, float, float | None]]:
    """Dividends without a price factor, with the close before their ex-date (None if
    that bar is not there yet)."""
    rows = await conn.fetch(
        "SELECT a.security_id, a.ex_date, a.value, p.close FROM corporate_actions a"
        " LEFT JOIN LATERAL (SELECT close FROM daily_bars b WHERE b.security_id = a.security_id"
        "   AND b.day < a.ex_date ORDER BY b.day DESC LIMIT 1) p ON TRUE"
        " WHERE a.kind = 'dividend' AND a.price_factor IS NULL"
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def set_price_factors(
    conn: asyncpg.Connection, rows: list[tuple[int, date, str, float]]
) -> None:
    if not rows:
        return
    await conn.execute(
        "UPDATE corporate_actions a SET price_factor = u.factor"
        " FROM unnest($1::int[], $2::date[], $3::text[], $4::float8[])"
        " AS u(security_id, ex_date, kind, factor)"
        " WHERE a.security_id = u.security_id AND a.ex_date = u.ex_date AND a.kind = u.kind",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def copy_actions(
    conn: asyncpg.Connection, rows: list[tuple[int, date, str, float, float | None, str]]
) -> None:
    """Bulk insert (into an empty table during the universe load)."""
    await conn.copy_records_to_table(
        "corporate_actions",
        records=rows,
        columns=("security_id", "ex_date", "kind", "value", "price_factor", "data_source"),
    )


async def actions_of(conn: asyncpg.Connection, security_ids: list[int]) -> dict[int, list[Action]]:
    """Every action of ``security_ids`` (one query), by security, oldest first."""
    rows = await conn.fetch(
        "SELECT security_id, ex_date, kind, value, price_factor FROM corporate_actions"
        " WHERE security_id = ANY($1::int[]) ORDER BY security_id, ex_date",
        security_ids,
    )
    result: dict[int, list[Action]] = {}
    for r in rows:
        result.setdefault(r["security_id"], []).append(_action(r))
    return result
