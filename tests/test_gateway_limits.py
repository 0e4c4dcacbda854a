"""Rate limits against real Redis and real gateway processes: exactness across two
instances, headers, Retry-After, key expiry, the login guard, and Redis outages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from gateway.tests.e2e import assert_envelope, new_user, wait_live
from tests.infra import TestInfra
from tests.platform import Platform, Process, free_port

pytestmark = pytest.mark.e2e

# 50 per hour: a burst of 50, then one every 72 s, so 200 requests sent together must see
# exactly 50 admitted however slow the machine. Writes refill fast (one every 2 s), for
# checking that waiting Retry-After is enough.
READ_QUOTA = "50/3600s"
WRITE_QUOTA = "3/6s"


@pytest.fixture(scope="module")
async def pair(
    platform: Platform, seeded: TestInfra
) -> AsyncIterator[tuple[str, Process, Process]]:
    """Two gateways sharing a fresh Redis namespace with small quotas."""
    prefix = f"{seeded.redis_prefix}limits-{uuid.uuid4().hex[:6]}:"
    overrides = {
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_RATE_LIMIT_READ": READ_QUOTA,
        "GATEWAY_RATE_LIMIT_WRITE": WRITE_QUOTA,
        "GATEWAY_RATE_LIMIT_LOGIN_IP": "5/60s",
        "GATEWAY_RATE_LIMIT_LOGIN_USER": "3/600s",
        # A loaded test machine can stall a check past the default 0.5 s; the local
        # fallback would then admit extra requests, and exactness is what is tested here.
        "GATEWAY_RATE_LIMIT_REDIS_TIMEOUT_SECONDS": "10",
    }
    first = platform.start_extra("gateway", overrides, tag="-limits-a")
    second = platform.start_extra("gateway", overrides, tag="-limits-b")
    try:
        await wait_live(first)
        await wait_live(second)
        yield prefix, first, second
    finally:
        first.stop()
        second.stop()


async def test_exactly_the_limit_is_admitted_across_two_instances(
    gateway: httpx.AsyncClient, pair: tuple[str, Process, Process], seeded: TestInfra
) -> None:
    prefix, first, second = pair
    user = await new_user(gateway, "viewer")
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=first.url, limits=limits, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, limits=limits, timeout=30) as b,
    ):
        clients = [a, b]
        responses = await asyncio.gather(
            *(
                clients[i % 2].get("/api/v1/stocks", params={"limit": 1}, headers=user.headers)
                for i in range(200)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(429) == 150
    for response in responses:
        assert response.headers["ratelimit-policy"] == '"read";q=50;w=3600'
        assert response.headers["ratelimit"].startswith('"read";r=')
        if response.status_code == 429:
            body = assert_envelope(response, 429, "RATE_LIMITED")
            assert 1 <= int(response.headers["retry-after"]) <= 72
            assert body["details"]["limit"] == 50
    # Both instances refused some: one bucket, shared (separate ones would admit 100).
    refused_by = {str(r.url).split("/api")[0] for r in responses if r.status_code == 429}
    assert refused_by == {first.url, second.url}

    # Every key the limiter wrote expires.
    client = aioredis.from_url(seeded.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        assert keys
        ttls = [await client.pttl(key) for key in keys]
        assert all(ttl > 0 for ttl in ttls), list(zip(keys, ttls, strict=True))
    finally:
        await client.aclose()


async def test_waiting_retry_after_is_enough(
    gateway: httpx.AsyncClient, pair: tuple[str, Process, Process]
) -> None:
    _, first, _ = pair
    user = await new_user(gateway, "viewer")
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:

        async def write() -> httpx.Response:
            return await client.post(
                "/api/v1/portfolio",
                json={"name": f"p-{uuid.uuid4().hex[:8]}"},
                headers=user.headers,
            )

        statuses = [(await write()).status_code for _ in range(3)]
        assert statuses == [201, 201, 201]
        refused = await write()
        assert_envelope(refused, 429, "RATE_LIMITED")
        assert refused.headers["ratelimit-policy"] == '"write";q=3;w=6'
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 2
        await asyncio.sleep(wait)
        again = await write()
        assert again.status_code == 201, again.text


async def test_every_api_answer_carries_the_headers(gateway: httpx.AsyncClient) -> None:
    user = await new_user(gateway, "viewer")
    answers = [
        await gateway.get("/api/v1/stocks", headers=user.headers),  # forwarded
        await gateway.get("/api/v1/users/me", headers=user.headers),  # the gateway's own
        await gateway.get("/api/v1/health"),  # public
        await gateway.get("/api/v1/stocks"),  # 401
        await gateway.get("/api/v1/users", headers=user.headers),  # 403
        await gateway.get("/api/v1/nowhere", headers=user.headers),  # 404
        await gateway.post(
            "/api/v1/auth/token", data={"username": user.username, "password": user.password}
        ),
    ]
    for answer in answers:
        assert "ratelimit-policy" in answer.headers, (answer.request.url, answer.status_code)
        assert "ratelimit" in answer.headers
    assert answers[0].headers["ratelimit-policy"].startswith('"read"')
    assert answers[2].headers["ratelimit-policy"].startswith('"public"')
    assert answers[6].headers["ratelimit-policy"].startswith('"login"')


async def test_failed_logins_are_limited_per_account_and_per_address(
    gateway: httpx.AsyncClient, pair: tuple[str, Process, Process]
) -> None:
    _, first, second = pair
    alice = await new_user(gateway, "viewer")
    bob = await new_user(gateway, "viewer")
    async with (
        httpx.AsyncClient(base_url=first.url) as a,
        httpx.AsyncClient(base_url=second.url) as b,
    ):

        async def attempt(
            client: httpx.AsyncClient, username: str, password: str
        ) -> httpx.Response:
            return await client.post(
                "/api/v1/auth/token", data={"username": username, "password": password}
            )

        # Successful logins cost nothing.
        for _ in range(8):
            assert (await attempt(a, alice.username, alice.password)).status_code == 200
        # Three failures for alice (her account's budget), spread over both instances...
        for client in (a, b, a):
            failed = await attempt(client, alice.username, "wrong-password")
            assert_envelope(failed, 401, "INVALID_CREDENTIALS")
            assert failed.headers["ratelimit-policy"] == '"login";q=5;w=60'
        # ...and then even her right password is refused until the bucket drains.
        locked = await attempt(b, alice.username, alice.password)
        assert_envelope(locked, 429, "RATE_LIMITED")
        assert int(locked.headers["retry-after"]) >= 1
        # The address has two failures left (5 per minute): bob's account spends them.
        for _ in range(2):
            assert_envelope(await attempt(a, bob.username, "wrong-password"), 401)
        assert_envelope(await attempt(a, bob.username, bob.password), 429, "RATE_LIMITED")


async def test_without_redis_reads_flow_and_logins_fail_closed(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    user = await new_user(gateway, "viewer")
    closed = free_port()  # nothing listens there
    process = platform.start_extra(
        "gateway",
        {"GATEWAY_REDIS_URL": f"redis://127.0.0.1:{closed}/0", "GATEWAY_RATE_LIMIT_READ": "5/300s"},
        tag="-limits-no-redis",
    )
    try:
        await wait_live(process)
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
            reads = [
                await client.get("/api/v1/stocks", params={"limit": 1}, headers=user.headers)
                for _ in range(6)
            ]
            # Served, and still limited, by this process alone: no 5xx from the limiter.
            assert [r.status_code for r in reads] == [200] * 5 + [429]
            assert all("ratelimit" in r.headers for r in reads)
            login = await client.post(
                "/api/v1/auth/token", data={"username": user.username, "password": user.password}
            )
            assert_envelope(login, 503, "LOGIN_UNAVAILABLE")
            assert login.headers["retry-after"]
            health = await client.get("/api/v1/health")
            assert health.status_code == 503
            report = health.json()
            assert report["rate_limiter"]["mode"] == "local"
            assert report["rate_limiter"]["logins"] == "refused"
            assert "redis" in report["failing"]
    finally:
        process.stop()
