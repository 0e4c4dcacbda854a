"""Every SQL statement of the portfolio service. Functions take the caller's connection
(in the request's transaction) and return domain values, never raw records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from services.portfolio.domain import Entry, Kind, Portfolio

_COLUMNS = "id, owner_id, name, base_currency, cash, version, is_default, created_at"
_ENTRY_COLUMNS = (
    "id, seq, kind, executed_at, amount, ticker, quantity, price, fee,"
    " split_to, split_from, reverses, note"
)


def _portfolio(row: asyncpg.Record) -> Portfolio:
    return Portfolio(**dict(row))


_KINDS = {kind.value: kind for kind in Kind}


def _entry(row: asyncpg.Record) -> Entry:
    # Positional, in _ENTRY_COLUMNS' order (the dataclass's): a ledger of thousands of
    # rows is read on every cache miss, and building it by keyword costs twice as much.
    return Entry(
        row[0], row[1], _KINDS[row[2]], row[3], row[4], row[5], row[6], row[7], row[8],
        row[9], row[10], row[11], row[12],
    )  # fmt: skip


# --- portfolios -----------------------------------------------------------------------


async def list_for_owner(
    conn: asyncpg.Connection, owner_id: str, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Portfolio]:
    """The owner's portfolios, oldest first, after the keyset position ``after``."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM portfolios WHERE owner_id = $1"
            " ORDER BY created_at, id LIMIT $2",
            owner_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM portfolios WHERE owner_id = $1 AND (created_at, id) > ($2, $3)"
            " ORDER BY created_at, id LIMIT $4",
            owner_id,
            after[0],
            after[1],
            limit,
        )
    return [_portfolio(row) for row in rows]


async def get(
    conn: asyncpg.Connection, owner_id: str, portfolio_id: UUID, *, lock: bool = False
) -> Portfolio | None:
    """The owner's portfolio (None for another owner's: the caller answers 404).
    ``lock`` takes the row for this transaction: every change to a portfolio goes
    through it, so changes to one portfolio are serialised and each sees the last."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM portfolios WHERE id = $1 AND owner_id = $2"
        + (" FOR UPDATE" if lock else ""),
        portfolio_id,
        owner_id,
    )
    return _portfolio(row) if row is not None else None


async def get_default(
    conn: asyncpg.Connection, owner_id: str, *, lock: bool = False
) -> Portfolio | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM portfolios WHERE owner_id = $1 AND is_default"
        + (" FOR UPDATE" if lock else ""),
        owner_id,
    )
    return _portfolio(row) if row is not None else None


async def version_of(conn: asyncpg.Connection, portfolio_id: UUID) -> int | None:
    version: int | None = await conn.fetchval(
        "SELECT version FROM portfolios WHERE id = $1", portfolio_id
    )
    return version


async def lock_owner(conn: asyncpg.Connection, owner_id: str) -> None:
    """Serialise choosing an owner's default portfolio (rare: once per owner)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('portfolio.default:' || $1, 0))",
        owner_id,
    )


async def promote_oldest_to_default(conn: asyncpg.Connection, owner_id: str) -> Portfolio | None:
    row = await conn.fetchrow(
        f"UPDATE portfolios SET is_default = true WHERE id = ("
        " SELECT id FROM portfolios WHERE owner_id = $1 ORDER BY created_at, id LIMIT 1"
        f") RETURNING {_COLUMNS}",
        owner_id,
    )
    return _portfolio(row) if row is not None else None


async def insert(
    conn: asyncpg.Connection,
    *,
    portfolio_id: UUID,
    owner_id: str,
    name: str,
    base_currency: str,
    is_default: bool = False,
) -> Portfolio | None:
    """The new portfolio, or None if the owner already has one with that name."""
    row = await conn.fetchrow(
        "INSERT INTO portfolios (id, owner_id, name, base_currency, is_default)"
        " VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT ON CONSTRAINT portfolios_owner_name_unique DO NOTHING RETURNING {_COLUMNS}",
        portfolio_id,
        owner_id,
        name,
        base_currency,
        is_default,
    )
    return _portfolio(row) if row is not None else None


async def rename(conn: asyncpg.Connection, portfolio_id: UUID, name: str) -> Portfolio | None:
    """The renamed portfolio (version bumped), or None if the name is taken."""
    try:
        async with conn.transaction():  # a savepoint: a taken name must not end the request's
            row = await conn.fetchrow(
                "UPDATE portfolios SET name = $2, version = version + 1, updated_at = now()"
                f" WHERE id = $1 RETURNING {_COLUMNS}",
                portfolio_id,
                name,
            )
    except asyncpg.UniqueViolationError:
        return None
    return _portfolio(row) if row is not None else None


async def set_balance(conn: asyncpg.Connection, portfolio_id: UUID, cash: Decimal) -> Portfolio:
    """Record the ledger's new cash balance and bump the version (the ETag)."""
    row = await conn.fetchrow(
        "UPDATE portfolios SET cash = $2, version = version + 1, updated_at = now()"
        f" WHERE id = $1 RETURNING {_COLUMNS}",
        portfolio_id,
        cash,
    )
    assert row is not None
    return _portfolio(row)


# --- the ledger -----------------------------------------------------------------------


async def entries(conn: asyncpg.Connection, portfolio_id: UUID) -> list[Entry]:
    """Every ledger row of the portfolio, in execution order."""
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM transactions WHERE portfolio_id = $1"
        " ORDER BY executed_at, seq",
        portfolio_id,
    )
    return [_entry(row) for row in rows]


async def entry(conn: asyncpg.Connection, portfolio_id: UUID, entry_id: UUID) -> Entry | None:
    row = await conn.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM transactions WHERE portfolio_id = $1 AND id = $2",
        portfolio_id,
        entry_id,
    )
    return _entry(row) if row is not None else None


async def page_of_entries(
    conn: asyncpg.Connection,
    portfolio_id: UUID,
    *,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Entry]:
    """Newest first, strictly before the keyset position ``before``."""
    if before is None:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM transactions WHERE portfolio_id = $1"
            " ORDER BY executed_at DESC, seq DESC LIMIT $2",
            portfolio_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM transactions WHERE portfolio_id = $1"
            " AND (executed_at, seq) < ($2, $3) ORDER BY executed_at DESC, seq DESC LIMIT $4",
            portfolio_id,
            before[0],
            before[1],
            limit,
        )
    return [_entry(row) for row in rows]


async def append(conn: asyncpg.Connection, portfolio_id: UUID, entry: Entry) -> Entry:
    """Write ``entry`` (its ``seq`` is assigned here); the stored row."""
    row = await conn.fetchrow(
        "INSERT INTO transactions (id, portfolio_id, kind, executed_at, amount, ticker,"
        " quantity, price, fee, split_to, split_from, reverses, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        f" RETURNING {_ENTRY_COLUMNS}",
        entry.id,
        portfolio_id,
        entry.kind.value,
        entry.executed_at,
        entry.amount,
        entry.ticker,
        entry.quantity,
        entry.price,
        entry.fee,
        entry.split_to,
        entry.split_from,
        entry.reverses,
        entry.note,
    )
    assert row is not None
    return _entry(row)


async def append_and_balance(
    conn: asyncpg.Connection, portfolio_id: UUID, entry: Entry, cash: Decimal
) -> tuple[Entry, Portfolio]:
    """:func:`append` and :func:`set_balance` in one statement: the hot path of a write
    (seven round trips to PostgreSQL for a keyed change instead of eight)."""
    row = await conn.fetchrow(
        "WITH written AS (INSERT INTO transactions (id, portfolio_id, kind, executed_at,"
        " amount, ticker, quantity, price, fee, split_to, split_from, reverses, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        f" RETURNING {_ENTRY_COLUMNS}),"
        " moved AS (UPDATE portfolios SET cash = $14, version = version + 1,"
        f" updated_at = now() WHERE id = $2 RETURNING {_COLUMNS})"
        f" SELECT {_prefixed('w', _ENTRY_COLUMNS)}, {_prefixed('m', _COLUMNS)}"
        " FROM written w, moved m",
        entry.id,
        portfolio_id,
        entry.kind.value,
        entry.executed_at,
        entry.amount,
        entry.ticker,
        entry.quantity,
        entry.price,
        entry.fee,
        entry.split_to,
        entry.split_from,
        entry.reverses,
        entry.note,
        cash,
    )
    assert row is not None
    width = len(_ENTRY_NAMES)
    return _entry(row), Portfolio(**dict(zip(_PORTFOLIO_NAMES, row[width:], strict=True)))


_ENTRY_NAMES = tuple(c.strip() for c in _ENTRY_COLUMNS.split(","))
_PORTFOLIO_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


# --- corporate actions and SELL flags (from other contexts' events) --------------------


async def portfolios_with_tickers(
    conn: asyncpg.Connection, tickers: list[str]
) -> dict[str, list[UUID]]:
    """For each of ``tickers``, the portfolios whose ledger ever named it (by id)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ticker, portfolio_id FROM transactions WHERE ticker = ANY($1::text[])"
        " ORDER BY ticker, portfolio_id",
        tickers,
    )
    found: dict[str, list[UUID]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row[1])
    return found


async def get_by_id(
    conn: asyncpg.Connection, portfolio_id: UUID, *, lock: bool = False
) -> Portfolio | None:
    """A portfolio whoever owns it: for event handlers, which act for every owner."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM portfolios WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        portfolio_id,
    )
    return _portfolio(row) if row is not None else None


async def action_applied(
    conn: asyncpg.Connection, portfolio_id: UUID, ticker: str, ex_date: date, kind: str
) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM applied_actions"
        " WHERE portfolio_id = $1 AND ticker = $2 AND ex_date = $3 AND kind = $4",
        portfolio_id,
        ticker,
        ex_date,
        kind,
    )
    return bool(found)


async def record_applied_action(
    conn: asyncpg.Connection,
    portfolio_id: UUID,
    ticker: str,
    ex_date: date,
    kind: str,
    transaction_id: UUID,
) -> None:
    await conn.execute(
        "INSERT INTO applied_actions (portfolio_id, ticker, ex_date, kind, transaction_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT applied_actions_pkey DO NOTHING",
        portfolio_id,
        ticker,
        ex_date,
        kind,
        transaction_id,
    )


@dataclass(frozen=True, slots=True)
class HoldingFlag:
    ticker: str
    recommendation_id: UUID
    run_id: UUID
    confidence: float
    flagged_at: datetime


async def insert_flag(
    conn: asyncpg.Connection,
    portfolio_id: UUID,
    ticker: str,
    recommendation_id: UUID,
    run_id: UUID,
    confidence: float,
) -> HoldingFlag | None:
    """The new flag, or None if this recommendation already flagged this holding."""
    row = await conn.fetchrow(
        "INSERT INTO holding_flags (portfolio_id, ticker, recommendation_id, run_id, confidence)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT ON CONSTRAINT holding_flags_pkey DO NOTHING"
        " RETURNING ticker, recommendation_id, run_id, confidence, flagged_at",
        portfolio_id,
        ticker,
        recommendation_id,
        run_id,
        confidence,
    )
    return HoldingFlag(*row) if row is not None else None


async def clear_flags(conn: asyncpg.Connection, tickers: list[str]) -> int:
    """Clear the open flags of ``tickers`` (their latest call is no longer SELL)."""
    status: str = await conn.execute(
        "UPDATE holding_flags SET cleared_at = now()"
        " WHERE ticker = ANY($1::text[]) AND cleared_at IS NULL",
        tickers,
    )
    return int(status.split()[-1])


async def open_flags(conn: asyncpg.Connection, portfolio_id: UUID) -> dict[str, HoldingFlag]:
    """The portfolio's open flags, the latest per ticker."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (ticker) ticker, recommendation_id, run_id, confidence, flagged_at"
        " FROM holding_flags WHERE portfolio_id = $1 AND cleared_at IS NULL"
        " ORDER BY ticker, flagged_at DESC",
        portfolio_id,
    )
    return {row[0]: HoldingFlag(*row) for row in rows}


# --- idempotency keys -----------------------------------------------------------------


async def claim_idempotency_key(
    conn: asyncpg.Connection, owner_id: str, key: str, fingerprint: str, ttl_seconds: int
) -> bool:
    """True if this request now holds ``key`` (new, or the old use expired). A
    concurrent request with the same key waits here on the row until the holder's
    transaction ends: then it sees the stored response (or, after a rollback, claims)."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (owner_id, key, fingerprint) VALUES ($1, $2, $3)"
        " ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE"
        " SET fingerprint = EXCLUDED.fingerprint, status_code = NULL, etag = NULL, response = NULL,"
        " created_at = now()"
        " WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)"
        " RETURNING true",
        owner_id,
        key,
        fingerprint,
        float(ttl_seconds),
    )
    return bool(claimed)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: str
    status: int | None  # None while the first request is still in progress
    etag: str | None
    body: bytes | None


async def stored_response(
    conn: asyncpg.Connection, owner_id: str, key: str
) -> StoredResponse | None:
    """What the key's first use asked and answered."""
    row = await conn.fetchrow(
        "SELECT fingerprint, status_code, etag, response FROM idempotency_keys"
        " WHERE owner_id = $1 AND key = $2",
        owner_id,
        key,
    )
    if row is None:
        return None
    return StoredResponse(row["fingerprint"], row["status_code"], row["etag"], row["response"])


async def store_response(
    conn: asyncpg.Connection,
    owner_id: str,
    key: str,
    *,
    status: int,
    etag: str | None,
    body: bytes,
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, etag = $4, response = $5"
        " WHERE owner_id = $1 AND key = $2",
        owner_id,
        key,
        status,
        etag,
        body,
    )


async def forget_expired_keys(conn: asyncpg.Connection, ttl_seconds: int, limit: int) -> int:
    """Delete up to ``limit`` keys older than the TTL; how many went."""
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)"
        " LIMIT $2))",
        float(ttl_seconds),
        limit,
    )
    return int(status.split()[-1])
