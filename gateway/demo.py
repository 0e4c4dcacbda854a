"""Demo accounts, one per role, created when the platform runs in demo mode.

These passwords are public (they are in the README): never run demo mode where
anyone else can reach the gateway.
"""

from __future__ import annotations

import asyncpg

from gateway.identity import repository
from gateway.identity.service import create_user

DEMO_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    # role, username, password
    ("viewer", "demo-viewer", "viewer-demo-pass"),
    ("analyst", "demo-analyst", "analyst-demo-pass"),
    ("admin", "demo-admin", "admin-demo-pass"),
)


async def seed_demo(conn: asyncpg.Connection) -> None:
    """Create the demo accounts that do not exist yet."""
    for role, username, password in DEMO_ACCOUNTS:
        if await repository.find_by_username(conn, username) is None:
            await create_user(conn, username, password, role)
