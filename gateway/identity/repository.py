"""Every SQL statement of the identity context."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from gateway.identity.domain import User

_COLUMNS = "id, username, password_hash, role, disabled, created_at"


async def find_by_username(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE username = $1", username)
    return User(**dict(row)) if row is not None else None


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
    return User(**dict(row)) if row is not None else None


async def update_password_hash(conn: asyncpg.Connection, user_id: UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )
