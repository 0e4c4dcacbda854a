"""Where a test session's infrastructure is (see the root ``conftest.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats

from bourse.parts import Part
from bourse.provision import part_migrations
from shared.db import (
    drop_database,
    ensure_database,
    ensure_service_schema,
    migrate,
    open_connection,
    service_dsn,
    with_database,
)


@dataclass(frozen=True)
class TestInfra:
    """Where this test session's infrastructure is, and its private namespaces."""

    __test__ = False

    run_id: str
    admin_url: str  # superuser DSN pointing at the session database
    admin_server_url: str  # superuser DSN as given (maintenance database)
    database: str
    redis_url: str
    redis_prefix: str
    nats_url: str
    nats_prefix: str

    def dsn_for(self, part: Part) -> str:
        """The DSN a part uses: its own role, on the session database."""
        return service_dsn(self.admin_server_url, database=self.database, role=part.db_role)


async def migrate_parts(infra: TestInfra, parts: Sequence[Part]) -> None:
    """Each part's role, schema and migrations on ``infra``'s database, as in production."""
    for part in parts:
        await ensure_service_schema(
            infra.admin_server_url, database=infra.database, role=part.db_role, schema=part.schema
        )
        conn = await open_connection(infra.dsn_for(part))
        try:
            await migrate(conn, part.schema, part_migrations(part))
        finally:
            await conn.close()


@asynccontextmanager
async def own_infra(infra: TestInfra, name: str, parts: Sequence[Part]) -> AsyncIterator[TestInfra]:
    """For a test module whose writes other tests must not see (or that must not see
    theirs): a database ``<session database>_<name>`` with ``parts`` migrated, and NATS and
    Redis namespaces of its own; the database is dropped at the end."""
    database = f"{infra.database}_{name}"
    await ensure_database(infra.admin_server_url, database)
    own = dataclasses.replace(
        infra,
        database=database,
        admin_url=with_database(infra.admin_server_url, database),
        nats_prefix=f"{infra.nats_prefix}{name}",
        redis_prefix=f"{infra.redis_prefix}{name}:",
    )
    try:
        await migrate_parts(own, parts)
        yield own
    finally:
        await drop_database(infra.admin_server_url, database)


async def delete_streams(nats_url: str, prefix: str) -> list[str]:
    """Delete every JetStream stream under ``prefix`` (a session's, and the sub-prefixes
    its tests make from it) with its consumers; return their names.

    The parts declare their streams (``<PREFIX>_MARKET`` ...) when they start: without
    this, every session left them in the server's store, which on a developer's machine
    is the development platform's own NATS.
    """
    wire = prefix.upper()
    client = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        jsm = client.jsm()
        names = [
            info.config.name
            for info in await jsm.streams_info()
            if info.config.name and info.config.name.startswith(wire)
        ]
        for name in names:
            await jsm.delete_stream(name)
        return names
    finally:
        await client.close()
