"""The response cache on real Redis: cache-aside, ETag / 304, gzip, tags, single flight,
and serving from the source when Redis is down."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient
from starlette.responses import Response

from shared.cache import CachedBody, ResponseCache, cached_response
from shared.redis import RedisNamespace, connect_redis
from tests.infra import TestInfra


@pytest.fixture
async def redis(infra: TestInfra) -> AsyncIterator[RedisNamespace]:
    namespace = connect_redis(
        infra.redis_url, prefix=f"{infra.redis_prefix}c{uuid.uuid4().hex[:6]}:"
    )
    try:
        yield namespace
    finally:
        keys = [k async for k in namespace.client.scan_iter(match=f"{namespace.prefix}*")]
        if keys:
            await namespace.client.delete(*keys)
        await namespace.close()


def test_cached_body_round_trips_and_compresses_large_bodies() -> None:
    small = CachedBody.build(b'{"a":1}')
    large = CachedBody.build(b'{"x":"' + b"y" * 5000 + b'"}')
    assert small.gzipped is None and large.gzipped is not None
    assert gzip.decompress(large.gzipped) == large.body
    for body in (small, large):
        assert CachedBody.from_bytes(body.to_bytes()) == body
    assert small.etag != large.etag and small.etag.startswith('"')


async def test_cache_aside_builds_once_then_serves_from_redis(redis: RedisNamespace) -> None:
    calls = 0

    async def build() -> CachedBody:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return CachedBody.build(b"[1,2,3]")

    cache = ResponseCache(redis, local_ttl=0.0)
    # Ten concurrent misses build once (single flight).
    results = await asyncio.gather(*(cache.get_or_build("k", 30, build) for _ in range(10)))
    assert calls == 1 and {r.body for r in results} == {b"[1,2,3]"}
    # Another process (a fresh cache object) finds it in Redis.
    other = ResponseCache(redis, local_ttl=0.0)
    assert (await other.get_or_build("k", 30, build)).body == b"[1,2,3]"
    assert calls == 1 and other.hits == 1


async def test_ttl_and_tags_invalidate(redis: RedisNamespace) -> None:
    version = 0

    async def build() -> CachedBody:
        return CachedBody.build(str(version).encode())

    cache = ResponseCache(redis, local_ttl=10.0)
    assert (await cache.get_or_build("tagged", 60, build, tags=("eod",))).body == b"0"
    assert (await cache.get_or_build("short", 0.05, build)).body == b"0"
    version = 1
    assert (await cache.get_or_build("tagged", 60, build, tags=("eod",))).body == b"0"
    assert await cache.invalidate("eod") == 1
    assert (await cache.get_or_build("tagged", 60, build, tags=("eod",))).body == b"1"
    await asyncio.sleep(0.1)
    cache.clear_local()
    assert (await cache.get_or_build("short", 0.05, build)).body == b"1"  # expired in Redis


async def test_redis_down_serves_from_the_source() -> None:
    broken = connect_redis("redis://127.0.0.1:1/0", timeout=0.2)
    cache = ResponseCache(broken, local_ttl=0.0)
    try:

        async def build() -> CachedBody:
            return CachedBody.build(b"fresh")

        assert (await cache.get_or_build("k", 10, build)).body == b"fresh"
        assert await cache.invalidate("any") == 0
    finally:
        await broken.close()


async def test_etag_304_and_gzip_negotiation() -> None:
    body = CachedBody.build(b'{"data":"' + b"z" * 4000 + b'"}')
    app = FastAPI()

    @app.get("/thing")
    async def thing(request: Request) -> Response:
        return cached_response(request, body, max_age=5)

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        plain = await client.get("/thing", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.content == body.body
        assert plain.headers["etag"] == body.etag and "content-encoding" not in plain.headers
        assert plain.headers["cache-control"] == "private, max-age=5"
        zipped = await client.get("/thing", headers={"Accept-Encoding": "gzip, br"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.json()["data"] == "z" * 4000  # httpx decodes it
        assert int(zipped.headers["content-length"]) < 200
        again = await client.get("/thing", headers={"If-None-Match": f'W/"nope", {body.etag}'})
        assert (
            again.status_code == 304 and again.content == b"" and again.headers["etag"] == body.etag
        )
        other = await client.get("/thing", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200
