"""Identity through the running gateway: sign-up by an admin, login, refresh rotation
with reuse detection, logout, disabling, role changes, API keys from creation to
revocation, and mass-assignment refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from gateway.tests.e2e import admin_headers, assert_envelope, new_user, token_pair, wait_live
from tests.platform import Platform

pytestmark = pytest.mark.e2e


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_a_user_signed_up_by_an_admin_logs_in_and_calls_services(
    gateway: httpx.AsyncClient,
) -> None:
    user = await new_user(gateway, "analyst")
    claims = pyjwt.decode(user.access_token, options={"verify_signature": False})
    assert claims["sub"] == user.id and claims["roles"] == ["analyst"]
    assert claims["token_use"] == "access" and claims["exp"] - claims["iat"] <= 900
    me = await gateway.get("/api/v1/users/me", headers=user.headers)
    assert me.json()["username"] == user.username and me.json()["role"] == "analyst"
    for path in (
        "/api/v1/stocks",
        "/api/v1/recommendations",
        "/api/v1/portfolio",
        "/api/v1/alerts",
    ):
        response = await gateway.get(path, headers=user.headers)
        assert response.status_code == 200, (path, response.text)
    # Usernames are case-insensitive; a very long password works.
    admin = await admin_headers(gateway)
    long_password = "correct horse battery staple " * 30  # 870 characters
    name = f"Long-{uuid.uuid4().hex[:8]}"
    created = await gateway.post(
        "/api/v1/users", json={"username": name, "password": long_password}, headers=admin
    )
    assert created.status_code == 201 and created.json()["role"] == "viewer"
    await token_pair(gateway, name.upper(), long_password)
    taken = await gateway.post(
        "/api/v1/users", json={"username": name.lower(), "password": long_password}, headers=admin
    )
    assert_envelope(taken, 409, "USERNAME_TAKEN")


async def test_refresh_rotates_and_reuse_revokes_the_family(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    first = await refresh(gateway, user.refresh_token)
    assert first.status_code == 200, first.text
    second_token = first.json()["refresh_token"]
    assert second_token != user.refresh_token
    assert first.headers["cache-control"] == "no-store"
    second = await refresh(gateway, second_token)
    assert second.status_code == 200
    third_token = second.json()["refresh_token"]
    # The OAuth2 form of the same grant works too.
    via_form = await gateway.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": third_token}
    )
    assert via_form.status_code == 200, via_form.text
    live_token = via_form.json()["refresh_token"]

    # The newest token still works; the rotated ones are spent (see the reuse tests).
    assert (await refresh(gateway, live_token)).status_code == 200


@pytest.fixture(scope="module")
async def no_grace(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway with no concurrent-refresh grace, so reuse is detected at once."""
    process = platform.start_extra(
        "gateway", {"GATEWAY_REFRESH_REUSE_GRACE_SECONDS": "0"}, tag="-no-grace"
    )
    try:
        await wait_live(process)
        async with httpx.AsyncClient(base_url=process.url, timeout=10.0) as client:
            yield client
    finally:
        process.stop()


async def test_reuse_revokes_every_token_of_the_login(no_grace: httpx.AsyncClient) -> None:
    user = await new_user(no_grace)
    other_login = await token_pair(no_grace, user.username, user.password)
    rotated = (await refresh(no_grace, user.refresh_token)).json()["refresh_token"]
    newest = (await refresh(no_grace, rotated)).json()["refresh_token"]
    # The first token again (a thief's copy, or the victim after the thief): the whole
    # family dies, the newest token included.
    assert_envelope(await refresh(no_grace, user.refresh_token), 401, "REFRESH_TOKEN_REUSED")
    assert_envelope(await refresh(no_grace, newest), 401, "INVALID_REFRESH_TOKEN")
    # Another login of the same user is another family: untouched.
    assert (await refresh(no_grace, other_login["refresh_token"])).status_code == 200


async def test_two_concurrent_refreshes_within_the_grace_both_succeed(
    gateway: httpx.AsyncClient,
) -> None:
    user = await new_user(gateway)
    results = await asyncio.gather(*(refresh(gateway, user.refresh_token) for _ in range(2)))
    assert [r.status_code for r in results] == [200, 200]
    tokens = {r.json()["refresh_token"] for r in results}
    assert len(tokens) == 2
    for token in tokens:
        assert (await refresh(gateway, token)).status_code == 200


async def test_logout_revokes_the_family(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    rotated = (await refresh(gateway, user.refresh_token)).json()["refresh_token"]
    out = await gateway.post("/api/v1/auth/logout", json={"refresh_token": rotated})
    assert out.status_code == 204
    assert_envelope(await refresh(gateway, rotated), 401, "INVALID_REFRESH_TOKEN")
    # Logging out twice, or with garbage, says nothing about the token.
    again = await gateway.post("/api/v1/auth/logout", json={"refresh_token": rotated})
    assert again.status_code == 204
    junk = await gateway.post("/api/v1/auth/logout", json={"refresh_token": "brt_nope"})
    assert junk.status_code == 204


async def test_disabled_users_cannot_log_in_refresh_or_use_keys(
    gateway: httpx.AsyncClient,
) -> None:
    admin = await admin_headers(gateway)
    user = await new_user(gateway, "analyst", admin=admin)
    key = (
        await gateway.post("/api/v1/api-keys", json={"name": "bot"}, headers=user.headers)
    ).json()["key"]
    assert (await gateway.get("/api/v1/stocks", headers={"X-API-Key": key})).status_code == 200

    disabled = await gateway.patch(
        f"/api/v1/users/{user.id}", json={"disabled": True}, headers=admin
    )
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert_envelope(await refresh(gateway, user.refresh_token), 401, "INVALID_REFRESH_TOKEN")
    login = await gateway.post(
        "/api/v1/auth/token", data={"username": user.username, "password": user.password}
    )
    assert_envelope(login, 401, "INVALID_CREDENTIALS")
    assert_envelope(await gateway.get("/api/v1/stocks", headers={"X-API-Key": key}), 401)


async def test_a_role_change_applies_at_the_next_refresh(gateway: httpx.AsyncClient) -> None:
    admin = await admin_headers(gateway)
    user = await new_user(gateway, "viewer", admin=admin)
    promoted = await gateway.patch(
        f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=admin
    )
    assert promoted.json()["role"] == "admin"
    assert_envelope(await gateway.get("/api/v1/users", headers=user.headers), 403, "FORBIDDEN")
    fresh = (await refresh(gateway, user.refresh_token)).json()["access_token"]
    listed = await gateway.get("/api/v1/users", headers={"Authorization": f"Bearer {fresh}"})
    assert listed.status_code == 200


async def test_admins_list_users_with_a_cursor(gateway: httpx.AsyncClient) -> None:
    admin = await admin_headers(gateway)
    for _ in range(3):
        await new_user(gateway, "analyst", admin=admin)
    first = await gateway.get("/api/v1/users", params={"limit": 2}, headers=admin)
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    rest = await gateway.get(
        "/api/v1/users", params={"limit": 500, "cursor": body["next_cursor"]}, headers=admin
    )
    names = [u["username"] for u in body["items"] + rest.json()["items"]]
    assert names == sorted(names) and len(names) == len(set(names)) >= 5
    analysts = await gateway.get("/api/v1/users", params={"role": "analyst"}, headers=admin)
    assert {u["role"] for u in analysts.json()["items"]} == {"analyst"}
    assert all("password" not in str(u) for u in analysts.json()["items"])
    unknown = await gateway.get("/api/v1/users", params={"role": "root"}, headers=admin)
    assert_envelope(unknown, 422, "VALIDATION_ERROR")


async def test_api_key_lifecycle(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway, "analyst")
    created = await gateway.post(
        "/api/v1/api-keys", json={"name": "reporting", "scopes": ["read"]}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("bak_" + key["prefix"]) and key["role"] == "analyst"
    assert created.headers["cache-control"] == "no-store"
    with_key = {"X-API-Key": key["key"]}

    stocks = await gateway.get("/api/v1/stocks", params={"limit": 1}, headers=with_key)
    assert stocks.status_code == 200, stocks.text
    assert "ratelimit" in stocks.headers
    # Read-only: writing is refused at the gateway.
    write = await gateway.post("/api/v1/portfolio", json={"name": "x"}, headers=with_key)
    assert_envelope(write, 403, "FORBIDDEN")
    # Keys cannot mint keys.
    minted = await gateway.post("/api/v1/api-keys", json={"name": "child"}, headers=with_key)
    assert_envelope(minted, 403)

    listed = (await gateway.get("/api/v1/api-keys", headers=user.headers)).json()["items"]
    mine = next(k for k in listed if k["id"] == key["id"])
    assert "key" not in mine and mine["last_used_at"] is not None  # shown once; use stamped

    revoked = await gateway.delete(f"/api/v1/api-keys/{key['id']}", headers=user.headers)
    assert revoked.status_code == 204
    assert_envelope(await gateway.get("/api/v1/stocks", headers=with_key), 401, "INVALID_API_KEY")


async def test_an_api_key_stops_at_its_expiry(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    past = await gateway.post(
        "/api/v1/api-keys",
        json={"name": "late", "expires_at": "2000-01-01T00:00:00Z"},
        headers=user.headers,
    )
    assert_envelope(past, 422)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    key = (
        await gateway.post(
            "/api/v1/api-keys",
            json={"name": "short", "expires_at": expires.isoformat()},
            headers=user.headers,
        )
    ).json()["key"]
    assert (await gateway.get("/api/v1/users/me", headers={"X-API-Key": key})).status_code == 200
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.2)
    # Expired while its lookup was cached: refused at once all the same.
    expired = await gateway.get("/api/v1/users/me", headers={"X-API-Key": key})
    assert_envelope(expired, 401, "INVALID_API_KEY")


async def test_api_keys_are_never_wider_than_their_owner(gateway: httpx.AsyncClient) -> None:
    admin = await admin_headers(gateway)
    viewer = await new_user(gateway, "viewer", admin=admin)
    too_wide = await gateway.post(
        "/api/v1/api-keys", json={"name": "x", "role": "admin"}, headers=viewer.headers
    )
    assert_envelope(too_wide, 403, "ROLE_EXCEEDS_OWNER")
    for_other = await gateway.post(
        "/api/v1/api-keys", json={"name": "x", "user_id": str(uuid.uuid4())}, headers=viewer.headers
    )
    assert_envelope(for_other, 403)
    # An admin makes a key for the viewer: it acts as the viewer.
    made = await gateway.post(
        "/api/v1/api-keys", json={"name": "ops", "user_id": viewer.id}, headers=admin
    )
    assert made.status_code == 201 and made.json()["user_id"] == viewer.id
    as_key = {"X-API-Key": made.json()["key"]}
    assert (await gateway.get("/api/v1/users/me", headers=as_key)).json()["id"] == viewer.id
    assert_envelope(await gateway.get("/api/v1/users", headers=as_key), 403)
    # An analyst's key is capped when its owner is demoted.
    analyst = await new_user(gateway, "analyst", admin=admin)
    key = (
        await gateway.post("/api/v1/api-keys", json={"name": "a"}, headers=analyst.headers)
    ).json()
    await gateway.patch(f"/api/v1/users/{analyst.id}", json={"role": "viewer"}, headers=admin)
    # (This instance forgets cached keys on a role change; others within 30 s.)
    capped = await gateway.get("/api/v1/users/me", headers={"X-API-Key": key["key"]})
    assert capped.status_code == 200 and capped.json()["role"] == "viewer"
    assert_envelope(
        await gateway.get("/api/v1/users", headers={"X-API-Key": key["key"]}), 403, "FORBIDDEN"
    )
    # Another user cannot revoke it (it is 'not found' to them).
    stranger = await new_user(gateway, "viewer", admin=admin)
    stolen = await gateway.delete(f"/api/v1/api-keys/{key['id']}", headers=stranger.headers)
    assert_envelope(stolen, 404, "API_KEY_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "PATCH",
            "/api/v1/users/me",
            {"current_password": "x", "new_password": "y" * 12, "role": "admin"},
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            {"current_password": "x", "new_password": "y" * 12, "disabled": False},
        ),
        ("POST", "/api/v1/api-keys", {"name": "k", "owner_role": "admin"}),
        ("POST", "/api/v1/api-keys", {"name": "k", "last_used_at": "2020-01-01T00:00:00Z"}),
        ("POST", "/api/v1/auth/refresh", {"refresh_token": "brt_x", "role": "admin"}),
    ],
)
async def test_mass_assignment_is_refused(
    gateway: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]
) -> None:
    user = await new_user(gateway)
    response = await gateway.request(method, path, json=body, headers=user.headers)
    details = assert_envelope(response, 422, "VALIDATION_ERROR")["details"]
    assert any(e["type"] == "extra_forbidden" for e in details["errors"])
    me = (await gateway.get("/api/v1/users/me", headers=user.headers)).json()
    assert me["role"] == "viewer" and me["disabled"] is False


async def test_changing_ones_password_ends_other_logins(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway)
    wrong = await gateway.patch(
        "/api/v1/users/me",
        json={"current_password": "not-it-at-all", "new_password": "a-new-password"},
        headers=user.headers,
    )
    assert_envelope(wrong, 401, "INVALID_CREDENTIALS")
    changed = await gateway.patch(
        "/api/v1/users/me",
        json={"current_password": user.password, "new_password": "a-new-password"},
        headers=user.headers,
    )
    assert changed.status_code == 204
    assert_envelope(await refresh(gateway, user.refresh_token), 401)
    await token_pair(gateway, user.username, "a-new-password")
