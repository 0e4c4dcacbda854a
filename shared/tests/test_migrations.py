"""Migrations apply once, in order, refuse edited history, and survive concurrent runs."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.db import Migration, MigrationError, migrate, open_connection, with_database
from tests.infra import TestInfra


@pytest.fixture
async def scratch_schema(infra: TestInfra):  # type: ignore[no-untyped-def]
    schema = f"scratch_{uuid.uuid4().hex[:8]}"
    conn = await open_connection(infra.admin_url)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


def _set(*sqls: str) -> list[Migration]:
    return [Migration("test", i + 1, f"step_{i + 1}", sql) for i, sql in enumerate(sqls)]


async def test_applies_pending_once(infra: TestInfra, scratch_schema: str) -> None:
    steps = _set("CREATE TABLE a (id int)", "ALTER TABLE a ADD COLUMN b text")
    conn = await open_connection(infra.admin_url)
    try:
        first = await migrate(conn, scratch_schema, steps)
        second = await migrate(conn, scratch_schema, steps)
        assert [m.version for m in first] == [1, 2]
        assert second == []
        more = await migrate(conn, scratch_schema, [*steps, *_set("", "", "CREATE TABLE c ()")[2:]])
        assert [m.version for m in more] == [3]
    finally:
        await conn.close()


async def test_edited_migration_is_refused(infra: TestInfra, scratch_schema: str) -> None:
    conn = await open_connection(infra.admin_url)
    try:
        await migrate(conn, scratch_schema, _set("CREATE TABLE a (id int)"))
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn, scratch_schema, _set("CREATE TABLE a (id bigint)"))
    finally:
        await conn.close()


async def test_an_accepted_earlier_text_counts_as_applied(
    infra: TestInfra, scratch_schema: str
) -> None:
    conn = await open_connection(infra.admin_url)
    try:
        (old,) = _set("CREATE TABLE a (id int)")
        await migrate(conn, scratch_schema, [old])
        edited = Migration("test", 1, "step_1", "CREATE TABLE a (id int) -- fixed", frozenset())
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn, scratch_schema, [edited])
        accepting = Migration("test", 1, "step_1", edited.sql, frozenset({old.checksum}))
        assert await migrate(conn, scratch_schema, [accepting]) == []
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_half_done(
    infra: TestInfra, scratch_schema: str
) -> None:
    conn = await open_connection(infra.admin_url)
    try:
        with pytest.raises(MigrationError):
            await migrate(
                conn, scratch_schema, _set("CREATE TABLE ok (id int)", "CREATE TABLE x (; broken")
            )
        versions = await conn.fetch(f'SELECT version FROM "{scratch_schema}".schema_migrations')
        assert [r["version"] for r in versions] == [1]
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.execute(f'SELECT * FROM "{scratch_schema}".x')
    finally:
        await conn.close()


async def test_concurrent_runs_apply_each_migration_once(
    infra: TestInfra, scratch_schema: str
) -> None:
    steps = _set("CREATE TABLE a (id int)", "INSERT INTO a VALUES (1)")
    conns = [
        await open_connection(with_database(infra.admin_url, infra.database)) for _ in range(4)
    ]
    try:
        results = await asyncio.gather(*(migrate(c, scratch_schema, steps) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 0, 2]
        assert await conns[0].fetchval(f'SELECT count(*) FROM "{scratch_schema}".a') == 1
    finally:
        for c in conns:
            await c.close()
