"""Each service's database role can use its own schema and nothing else's."""

from __future__ import annotations

import asyncpg
import pytest

from bourse.parts import MARKET, PARTS, PORTFOLIO
from shared.db import open_connection
from tests.infra import TestInfra


async def test_a_service_cannot_read_another_services_schema(infra: TestInfra) -> None:
    conn = await open_connection(infra.dsn_for(PORTFOLIO))
    try:
        assert await conn.fetchval("SELECT count(*) FROM portfolios") >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM market.securities")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()


@pytest.mark.parametrize("owner", PARTS, ids=lambda p: p.name)
async def test_no_other_role_has_usage_on_a_schema(infra: TestInfra, owner) -> None:  # type: ignore[no-untyped-def]
    conn = await open_connection(infra.admin_url)
    try:
        for other in PARTS:
            allowed = await conn.fetchval(
                "SELECT has_schema_privilege($1, $2, 'USAGE')", other.db_role, owner.schema
            )
            assert allowed == (other is owner), (other.db_role, owner.schema)
    finally:
        await conn.close()


async def test_the_search_path_is_the_services_own_schema(infra: TestInfra) -> None:
    conn = await open_connection(infra.dsn_for(MARKET))
    try:
        assert await conn.fetchval("SHOW search_path") == "market"
    finally:
        await conn.close()
