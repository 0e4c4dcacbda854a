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


async def test_a_login_burst_leaves_the_pool_to_other_routes(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    # Logins wait for a password slot holding no connection: while 50 are queued, a
    # database read of another caller still gets a connection at once.
    username = await make_user(infra)
    caller = await bearer(gateway.client, await make_user(infra))
    pool = gateway.app.state.resources.pool
    in_use: list[int] = []
    burst = asyncio.gather(
        *(password_login(gateway.client, username) for _ in range(5 * gateway.settings.db_pool_max))
    )
    while not burst.done():
        in_use.append(pool.get_size() - pool.get_idle_size())
        await asyncio.sleep(0.005)
    answers = await burst
    me = await gateway.client.get("/api/v1/users/me", headers=caller)
    assert {a.status_code for a in answers} == {200} and me.status_code == 200
    # Never the whole pool: a login holds a connection only while it has a password slot
    # (and for its last short write), so other routes always find one.
    assert max(in_use) < gateway.settings.db_pool_max, max(in_use)


async def test_logins_beyond_the_password_slots_answer_503_not_500(
    infra: TestInfra, tmp_path: Path
) -> None:
    username = await make_user(infra)
    async with running_app(
        "gateway", infra, tmp_path, password_hash_concurrency=1, password_hash_wait_seconds=0.05
    ) as gw:
        answers = await asyncio.gather(*(password_login(gw.client, username) for _ in range(20)))
        codes = {a.status_code for a in answers}
        assert codes == {200, 503}, codes
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.json()["error_code"] == "LOGIN_BUSY"
        assert busy.headers["Retry-After"] == "2"
        assert (await password_login(gw.client, username)).status_code == 200


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


# --- the account's current state guards keys, passwords and users ----------------------


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    answer = await password_login(client, username)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def user_id_of(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    answer = await client.get("/api/v1/users/me", headers=headers)
    assert answer.status_code == 200, answer.text
    user_id: str = answer.json()["id"]
    return user_id


async def set_user(
    client: httpx.AsyncClient, admin: dict[str, str], user_id: str, **change: object
) -> None:
    answer = await client.patch(f"/api/v1/users/{user_id}", json=change, headers=admin)
    assert answer.status_code == 200, answer.text


async def test_a_disabled_users_unexpired_token_cannot_touch_keys_or_the_password(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    client = gateway.client
    admin = await bearer(client, await make_user(infra, "admin"))
    user = await bearer(client, await make_user(infra))
    user_id = await user_id_of(client, user)
    await set_user(client, admin, user_id, disabled=True)

    attempts = [
        client.post("/api/v1/api-keys", json={"name": "after"}, headers=user),
        client.patch(
            "/api/v1/users/me",
            json={"current_password": PASSWORD, "new_password": "another long one"},
            headers=user,
        ),
        client.get("/api/v1/users/me", headers=user),
        client.get("/api/v1/api-keys", headers=user),
    ]
    for answer in await asyncio.gather(*attempts):
        assert answer.status_code == 401, answer.text
        assert answer.json()["error_code"] == "ACCOUNT_DISABLED"
    # Nothing was made: no key, and the password is the old one once re-enabled.
    keys = await client.get(f"/api/v1/api-keys?user_id={user_id}", headers=admin)
    assert keys.json()["items"] == []
    await set_user(client, admin, user_id, disabled=False)
    assert (
        await password_login(
            client, (await client.get(f"/api/v1/users/{user_id}", headers=admin)).json()["username"]
        )
    ).status_code == 200


async def test_disabling_revokes_the_users_keys_and_sessions_for_good(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    client = gateway.client
    admin = await bearer(client, await make_user(infra, "admin"))
    username = await make_user(infra)
    login = (await password_login(client, username)).json()
    user = {"Authorization": f"Bearer {login['access_token']}"}
    user_id = await user_id_of(client, user)
    created = await client.post("/api/v1/api-keys", json={"name": "k"}, headers=user)
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}
    assert (await client.get("/api/v1/users/me", headers=key)).status_code == 200

    await set_user(client, admin, user_id, disabled=True)
    await set_user(client, admin, user_id, disabled=False)

    # Enabling the account again brings back neither the key nor the login.
    assert (await client.get("/api/v1/users/me", headers=key)).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert refreshed.status_code == 401
    keys = (await client.get(f"/api/v1/api-keys?user_id={user_id}", headers=admin)).json()
    assert [k["revoked_at"] is not None for k in keys["items"]] == [True]
    # One transaction: PostgreSQL's now() is the transaction's start, the same for both.
    conn = await open_connection(infra.dsn_for(GATEWAY))
    try:
        stamps = await conn.fetch(
            "SELECT revoked_at FROM api_keys WHERE user_id = $1"
            " UNION ALL SELECT revoked_at FROM refresh_families WHERE user_id = $1",
            uuid.UUID(user_id),
        )
    finally:
        await conn.close()
    assert len(stamps) == 2 and len({row["revoked_at"] for row in stamps}) == 1


async def test_an_admin_cannot_make_a_key_for_a_disabled_user(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    client = gateway.client
    admin = await bearer(client, await make_user(infra, "admin"))
    user_id = await user_id_of(client, await bearer(client, await make_user(infra)))
    await set_user(client, admin, user_id, disabled=True)
    answer = await client.post(
        "/api/v1/api-keys", json={"name": "k", "user_id": user_id}, headers=admin
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["error_code"] == "USER_DISABLED"


async def test_a_disabled_or_demoted_admins_token_cannot_manage_users(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    client = gateway.client
    admin = await bearer(client, await make_user(infra, "admin"))
    disabled = await bearer(client, await make_user(infra, "admin"))
    demoted = await bearer(client, await make_user(infra, "admin"))
    await set_user(client, admin, await user_id_of(client, disabled), disabled=True)
    await set_user(client, admin, await user_id_of(client, demoted), role="viewer")
    new_user = {"username": f"n{uuid.uuid4().hex[:10]}", "password": PASSWORD}
    for headers, status in ((disabled, 401), (demoted, 403)):
        for answer in (
            await client.get("/api/v1/users", headers=headers),
            await client.post("/api/v1/users", json=new_user, headers=headers),
        ):
            assert answer.status_code == status, answer.text
    listed = await client.get("/api/v1/users?limit=500", headers=admin)
    assert new_user["username"] not in [u["username"] for u in listed.json()["items"]]


async def test_wrong_current_passwords_are_failed_logins_of_the_username(
    infra: TestInfra, tmp_path: Path
) -> None:
    username = await make_user(infra)
    async with running_app(
        "gateway",
        infra,
        tmp_path,
        rate_limit_login_user="3/600s",
        rate_limit_login_ip="1000/60s",
    ) as gw:
        user = await bearer(gw.client, username)
        change = {"current_password": "not the password", "new_password": "a new long one"}
        for _ in range(3):
            answer = await gw.client.patch("/api/v1/users/me", json=change, headers=user)
            assert answer.status_code == 401, answer.text
        # The account's budget is spent: the right password is refused too, here and at
        # the token endpoint, until it refills.
        right = {**change, "current_password": PASSWORD}
        answer = await gw.client.patch("/api/v1/users/me", json=right, headers=user)
        assert answer.status_code == 429, answer.text
        assert "Retry-After" in answer.headers
        assert (await password_login(gw.client, username)).status_code == 429


# --- API keys ---------------------------------------------------------------------------


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


async def test_a_key_request_racing_a_disabling_waits_for_it_and_is_refused(
    gateway: InProcessApp, infra: TestInfra
) -> None:
    client = gateway.client
    user = await bearer(client, await make_user(infra))
    user_id = uuid.UUID(await user_id_of(client, user))
    # A disabling in flight: the user's row is changed but not yet committed.
    conn = await open_connection(infra.dsn_for(GATEWAY))
    try:
        disabling = conn.transaction()
        await disabling.start()
        await conn.execute("UPDATE users SET disabled = true WHERE id = $1", user_id)
        request = asyncio.create_task(
            client.post("/api/v1/api-keys", json={"name": "racing"}, headers=user)
        )
        await asyncio.sleep(0.5)
        # Reading the row as it was (enabled) would have made the key already.
        assert not request.done()
        await disabling.commit()
        answer = await asyncio.wait_for(request, 30)
    finally:
        await conn.close()
    assert answer.status_code == 401, answer.text
    assert answer.json()["error_code"] == "ACCOUNT_DISABLED"
