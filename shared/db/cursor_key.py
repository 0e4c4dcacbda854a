"""The secret that signs a part's pagination cursors (:mod:`shared.pagination`) when no
``<P>_CURSOR_KEY`` is configured: made once per deployment by the ``pagination`` migration
(``shared/pagination_migrations``) in the part's own schema, read by every replica."""

from __future__ import annotations

import asyncpg


async def stored_cursor_secret(conn: asyncpg.Connection) -> bytes:
    """The part's stored cursor secret (the migration has made it)."""
    secret: bytes | None = await conn.fetchval("SELECT key FROM cursor_key")
    if secret is None:
        raise RuntimeError("cursor_key is empty: the pagination migration did not run")
    return secret
