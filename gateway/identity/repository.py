"""Every SQL statement of the identity context. Each function takes a connection and
returns domain values; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from gateway.identity.domain import ApiKey, ApiKeyGrant, RefreshToken, User

_COLUMNS = "id, username, password_hash, role, disabled, created_at"
_KEY_COLUMNS = (
    "id, user_id, name, prefix, role, scopes, created_at, expires_at, revoked_at, last_used_at"
)


def _user(row: asyncpg.Record | None) -> User | None:
    return User(**dict(row)) if row is not None else None


def _key(row: asyncpg.Record) -> ApiKey:
    values = dict(row)
    values["scopes"] = tuple(values["scopes"])
    return ApiKey(**values)


# --- users ------------------------------------------------------------------------------


async def find_by_username(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE username = $1", username)
    return _user(row)


async def find_by_id(conn: asyncpg.Connection, user_id: UUID) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
    return _user(row)


async def find_by_id_for_share(conn: asyncpg.Connection, user_id: UUID) -> User | None:
    """The user, its row share-locked until the transaction ends: a concurrent change of
    its state (disabling, a new role) waits for this transaction, and this one for it."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1 FOR SHARE", user_id)
    return _user(row)


async def insert(
    conn: asyncpg.Connection, *, user_id: UUID, username: str, password_hash: str, role: str
) -> User | None:
    """The new user, or None when the username is taken."""
    row = await conn.fetchrow(
        "INSERT INTO users (id, username, password_hash, role) VALUES ($1, $2, $3, $4)"
        f" ON CONFLICT ON CONSTRAINT users_username_unique DO NOTHING RETURNING {_COLUMNS}",
        user_id,
        username,
        password_hash,
        role,
    )
    return _user(row)


async def update_password_hash(conn: asyncpg.Connection, user_id: UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )


async def list_users(
    conn: asyncpg.Connection, *, after: str | None, limit: int, role: str | None
) -> list[User]:
    """Users ordered by username, those after ``after``."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users"
        " WHERE ($1::text IS NULL OR username > $1) AND ($2::text IS NULL OR role = $2)"
        " ORDER BY username LIMIT $3",
        after,
        role,
        limit,
    )
    return [User(**dict(row)) for row in rows]


async def update_user(
    conn: asyncpg.Connection, user_id: UUID, *, role: str | None, disabled: bool | None
) -> User | None:
    row = await conn.fetchrow(
        "UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled),"
        f" updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
        user_id,
        role,
        disabled,
    )
    return _user(row)


# --- refresh tokens ---------------------------------------------------------------------


async def insert_family(conn: asyncpg.Connection, family_id: UUID, user_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)", family_id, user_id
    )


async def insert_refresh_token(
    conn: asyncpg.Connection,
    *,
    token_id: UUID,
    family_id: UUID,
    token_hash: bytes,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (id, family_id, token_hash, expires_at)"
        " VALUES ($1, $2, $3, $4)",
        token_id,
        family_id,
        token_hash,
        expires_at,
    )


async def claim_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> RefreshToken | None:
    """Mark the token used if it is live (unused, unexpired, family not revoked): the one
    statement that makes rotation race-free. None when it was not live."""
    row = await conn.fetchrow(
        "UPDATE refresh_tokens t SET used_at = now() FROM refresh_families f"
        " WHERE t.token_hash = $1 AND f.id = t.family_id AND t.used_at IS NULL"
        "   AND f.revoked_at IS NULL AND t.expires_at > now()"
        " RETURNING t.id, t.family_id, f.user_id, t.expires_at, t.used_at,"
        "   false AS family_revoked",
        token_hash,
    )
    return RefreshToken(**dict(row)) if row is not None else None


async def find_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> RefreshToken | None:
    row = await conn.fetchrow(
        "SELECT t.id, t.family_id, f.user_id, t.expires_at, t.used_at,"
        "   f.revoked_at IS NOT NULL AS family_revoked"
        " FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id"
        " WHERE t.token_hash = $1",
        token_hash,
    )
    return RefreshToken(**dict(row)) if row is not None else None


async def revoke_family(conn: asyncpg.Connection, family_id: UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2"
        " WHERE id = $1 AND revoked_at IS NULL",
        family_id,
        reason,
    )


async def revoke_user_families(conn: asyncpg.Connection, user_id: UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2"
        " WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason,
    )


# --- API keys ---------------------------------------------------------------------------


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    key_id: UUID,
    user_id: UUID,
    name: str,
    prefix: str,
    secret_hash: bytes,
    role: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> ApiKey:
    row = await conn.fetchrow(
        "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, role, scopes, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_KEY_COLUMNS}",
        key_id,
        user_id,
        name,
        prefix,
        secret_hash,
        role,
        list(scopes),
        expires_at,
    )
    assert row is not None
    return _key(row)


async def list_api_keys(conn: asyncpg.Connection, user_id: UUID) -> list[ApiKey]:
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id",
        user_id,
    )
    return [_key(row) for row in rows]


async def find_api_key(conn: asyncpg.Connection, key_id: UUID) -> ApiKey | None:
    row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
    return _key(row) if row is not None else None


async def revoke_api_key(conn: asyncpg.Connection, key_id: UUID) -> ApiKey | None:
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
        f" RETURNING {_KEY_COLUMNS}",
        key_id,
    )
    return _key(row) if row is not None else None


async def revoke_user_api_keys(conn: asyncpg.Connection, user_id: UUID) -> int:
    """Revoke every live key of the user; returns how many."""
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    return int(status.rsplit(" ", 1)[1])


async def use_api_key(
    conn: asyncpg.Connection, prefix: str, secret_hash: bytes
) -> ApiKeyGrant | None:
    """The grant of a live key (right secret, not revoked or expired, owner enabled),
    stamping its last use; None otherwise. One statement, one round trip."""
    row = await conn.fetchrow(
        "UPDATE api_keys k SET last_used_at = now() FROM users u"
        " WHERE k.prefix = $1 AND k.secret_hash = $2 AND u.id = k.user_id"
        "   AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())"
        "   AND NOT u.disabled"
        " RETURNING k.id AS key_id, k.user_id, u.username, k.role, u.role AS owner_role,"
        "   k.scopes, k.expires_at",
        prefix,
        secret_hash,
    )
    if row is None:
        return None
    return ApiKeyGrant(
        key_id=row["key_id"],
        user_id=row["user_id"],
        username=row["username"],
        key_role=row["role"],
        owner_role=row["owner_role"],
        scopes=tuple(row["scopes"]),
        expires_at=row["expires_at"],
    )
