"""Administrative set-up, run with a superuser (or CREATEROLE + CREATEDB) DSN.

Each service gets its own login role and one schema owned by that role. ``PUBLIC``
loses every right on the schema, so no other service's role can read it: the rule
"a service never touches another's schema" is enforced by PostgreSQL, not by habit.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe PostgreSQL identifier: {name!r}")
    return f'"{name}"'


def service_dsn(admin_dsn: str, *, database: str, role: str, password: str | None = None) -> str:
    """``admin_dsn`` with its user, password and database replaced."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = quote(role, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    netloc += "@" + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/" + database, parts.query, parts.fragment))


async def ensure_database(admin_dsn: str, database: str) -> bool:
    """Create ``database`` if it does not exist. Returns True if it was created."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_ident(database)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, database: str) -> None:
    """Drop ``database``, disconnecting whoever is still connected."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)} WITH (FORCE)")
    finally:
        await conn.close()


async def ensure_service_schema(
    admin_dsn: str,
    *,
    database: str,
    role: str,
    schema: str,
    password: str | None = None,
) -> None:
    """Create (or bring up to date) ``role`` and the ``schema`` it owns in ``database``.

    Safe to run any number of times, also concurrently with another run.
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        # Roles are cluster-wide and CREATE ROLE has no IF NOT EXISTS: tolerate the race.
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(f"CREATE ROLE {_ident(role)} LOGIN")
        if password is not None:
            # ALTER ROLE takes no bind parameters; quote the literal on the server.
            literal = await conn.fetchval("SELECT quote_literal($1)", password)
            await conn.execute(f"ALTER ROLE {_ident(role)} LOGIN PASSWORD {literal}")
        await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {_ident(role)}")
    finally:
        await conn.close()

    conn = await asyncpg.connect(with_database(admin_dsn, database))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bourse.bootstrap'))")
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)} AUTHORIZATION {_ident(role)}"
            )
            await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {_ident(role)}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {_ident(schema)} FROM PUBLIC")
            # Only owners create objects in public (PostgreSQL 15's default, made explicit).
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            await conn.execute(
                f"ALTER ROLE {_ident(role)} IN DATABASE {_ident(database)} "
                f"SET search_path = {_ident(schema)}"
            )
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at ``database`` instead, everything else kept."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
