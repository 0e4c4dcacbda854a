"""Operator entry points into identity, used by the ``bourse`` command line."""

from __future__ import annotations

import asyncpg

from gateway.identity.domain import User
from gateway.identity.repository import find_by_username
from gateway.identity.service import create_user as _create_user


async def create_user(conn: asyncpg.Connection, username: str, password: str, role: str) -> User:
    """Create a user (any role, admins included)."""
    return await _create_user(conn, username, password, role)


async def user_id_of(conn: asyncpg.Connection, username: str) -> str | None:
    """The id (tokens' subject) of ``username``, or None if there is no such user."""
    found = await find_by_username(conn, username)
    return str(found.id) if found is not None else None
