"""Operator entry points into identity, used by the ``bourse`` command line."""

from __future__ import annotations

import asyncpg

from gateway.identity.domain import User
from gateway.identity.service import create_user as _create_user


async def create_user(conn: asyncpg.Connection, username: str, password: str, role: str) -> User:
    """Create a user (any role, admins included)."""
    return await _create_user(conn, username, password, role)
