"""Fixtures of the recommendations tests: a database of their own.

The ledger is one hash chain and "the latest run" is one run per database, so these tests
publish into a private database (and NATS namespace) instead of the session's, where the
platform's own runs live: a tampered row or a synthetic run here never shows up there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bourse.parts import RECOMMENDATIONS
from bourse.provision import part_migrations
from shared.db import drop_database, ensure_database, ensure_service_schema, migrate
from shared.db.bootstrap import with_database
from shared.db.pool import open_connection
from tests.infra import TestInfra


@pytest.fixture(scope="module")
async def ledger_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    database = f"{infra.database}_rec"
    await ensure_database(infra.admin_server_url, database)
    own = dataclasses.replace(
        infra,
        database=database,
        admin_url=with_database(infra.admin_server_url, database),
        nats_prefix=f"{infra.nats_prefix}r",
        redis_prefix=f"{infra.redis_prefix}rec:",
    )
    try:
        await ensure_service_schema(
            infra.admin_server_url,
            database=database,
            role=RECOMMENDATIONS.db_role,
            schema=RECOMMENDATIONS.schema,
        )
        conn = await open_connection(own.dsn_for(RECOMMENDATIONS))
        try:
            await migrate(conn, RECOMMENDATIONS.schema, part_migrations(RECOMMENDATIONS))
        finally:
            await conn.close()
        yield own
    finally:
        await drop_database(infra.admin_server_url, database)
