"""The gateway's identity routes, run in process on the real PostgreSQL, Redis and NATS.

Grouped per route; each test makes its own users (plain factory functions), so no test
depends on another's data or order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bourse.parts import GATEWAY
from gateway.identity import service
from shared.db import open_connection
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

PASSWORD = "correct horse battery"


async def make_user(infra: TestInfra, role: str = "viewer") -> str:
    """A new user with :data:`PASSWORD`; returns the username."""
    username = f"u{uuid.uuid4().hex[:12]}"
    conn = await open_connection(infra.dsn_for(GATEWAY))
    try:
        await service.create_user(conn, username, PASSWORD, role)
    finally:
        await conn.close()
    return username


async def password_login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )


@pytest.fixture(scope="module")
async def gateway(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app("gateway", infra, tmp_path_factory.mktemp("gw")) as running:
        yield running


# --- POST /auth/token ------------------------------------------------------------------


async def test_a_burst_of_five_times_the_pool_in_logins_all_complete(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    # 50 concurrent password logins once wedged the pool for good: each request held a
    # connection while waiting for a second one.
    username = await make_user(infra)
    burst = 5 * gateway.settings.db_pool_max
    async with asyncio.timeout(120):
        answers = await asyncio.gather(
            *(password_login(gateway.client, username) for _ in range(burst))
        )
    assert [a.status_code for a in answers] == [200] * burst, {
        a.status_code: a.text for a in answers
    }
    ready = await gateway.client.get("/ready")
    assert ready.json()["checks"]["postgres"]["status"] == "up", ready.text
    assert (await password_login(gateway.client, username)).status_code == 200


async def test_a_burst_of_refreshes_all_complete(gateway: InProcessApp, infra: TestInfra) -> None:
    username = await make_user(infra)
    burst = 5 * gateway.settings.db_pool_max
    tokens = [
        (await password_login(gateway.client, username)).json()["refresh_token"]
        for _ in range(burst)
    ]
    async with asyncio.timeout(120):
        answers = await asyncio.gather(
            *(
                gateway.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
                for token in tokens
            )
        )
    assert [a.status_code for a in answers] == [200] * burst


async def test_logins_answer_503_with_retry_after_while_the_pool_is_exhausted(
    infra: TestInfra, tmp_path: Path
) -> None:
    username = await make_user(infra)
    async with running_app(
        "gateway", infra, tmp_path, db_pool_max=2, db_acquire_timeout_seconds=0.3
    ) as small:
        pool = small.app.state.resources.pool
        held = [await pool.acquire() for _ in range(2)]
        try:
            answer = await password_login(small.client, username)
        finally:
            for conn in held:
                await pool.release(conn)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error_code"] == "DATABASE_BUSY"
        # Once a connection is free again, logins work: nothing stayed wedged.
        assert (await password_login(small.client, username)).status_code == 200


async def test_a_reused_refresh_token_revokes_its_family_although_the_request_fails(
    infra: TestInfra, tmp_path: Path
) -> None:
    username = await make_user(infra)
    async with running_app("gateway", infra, tmp_path, refresh_reuse_grace_seconds=0) as gw:
        first = (await password_login(gw.client, username)).json()["refresh_token"]
        second = (
            await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        ).json()["refresh_token"]
        await asyncio.sleep(0.01)
        reused = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 401
        # The revocation was committed although the request answered an error.
        after = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": second})
        assert after.status_code == 401


# --- API keys ---------------------------------------------------------------------------


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    token = (await password_login(client, username)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def test_a_burst_of_key_creations_and_key_checks_all_complete(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    username = await make_user(infra)
    caller = await bearer(gateway.client, username)
    burst = 5 * gateway.settings.db_pool_max
    async with asyncio.timeout(120):
        created = await asyncio.gather(
            *(
                gateway.client.post(
                    "/api/v1/api-keys", json={"name": f"k{i}", "scopes": ["read"]}, headers=caller
                )
                for i in range(burst)
            )
        )
        assert [c.status_code for c in created] == [201] * burst
        # Each key is checked by the edge (one connection, given back) before the route
        # takes the request's own: never two at once.
        checked = await asyncio.gather(
            *(
                gateway.client.get("/api/v1/users/me", headers={"X-API-Key": c.json()["key"]})
                for c in created
            )
        )
    assert [c.status_code for c in checked] == [200] * burst
    assert {c.json()["username"] for c in checked} == {username}
