"""``/ready`` of every part while one of its dependencies is away.

A part is taken out of rotation (503) only for a dependency without which it can serve
nothing (docs/architecture.md, "Health"): PostgreSQL for market, recommendations and
portfolio; nothing for the gateway (forwarding needs none) and for realtime (price streams
need NATS, alert rules PostgreSQL). Redis and NATS never take a part out: it reports
``degraded`` and keeps serving.

Each part runs in process with its PostgreSQL, Redis and NATS connections going through
TCP proxies of the test's own, which are cut and restored: the shared servers are never
touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bourse.parts import BY_NAME
from shared.tests.support import TcpProxy
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

REQUIRED = {
    "gateway": set(),
    "market": {"postgres"},
    "recommendations": {"postgres"},
    "portfolio": {"postgres"},
    "realtime": set(),
}


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


@asynccontextmanager
async def _behind_proxies(
    name: str, infra: TestInfra, work: Path
) -> AsyncIterator[tuple[InProcessApp, dict[str, TcpProxy]]]:
    database_url = infra.dsn_for(BY_NAME[name])
    proxies = {
        "postgres": TcpProxy(*_host_port(database_url)),
        "redis": TcpProxy(*_host_port(infra.redis_url)),
        "nats": TcpProxy(*_host_port(infra.nats_url)),
    }
    for proxy in proxies.values():
        await proxy.start()
    try:
        async with running_app(
            name,
            infra,
            work,
            database_url=_through(database_url, proxies["postgres"]),
            redis_url=_through(infra.redis_url, proxies["redis"]),
            nats_url=_through(infra.nats_url, proxies["nats"]),
        ) as part:
            try:
                yield part, proxies
            finally:
                for proxy in proxies.values():
                    await proxy.start()  # everything back before the part shuts down
    finally:
        for proxy in proxies.values():
            await proxy.stop()


async def _ready(part: InProcessApp, *, want: int, down: list[str]) -> dict[str, object]:
    """``/ready`` once it answers ``want`` with ``down`` (dependencies reconnect in the
    background, so an answer may take a moment to change)."""
    for _ in range(100):
        response = await part.client.get("/ready")
        body: dict[str, object] = response.json()
        if response.status_code == want and body["down"] == down:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"/ready stayed {response.status_code} {body}, wanted {want} {down}")


@pytest.mark.parametrize("name", sorted(REQUIRED))
async def test_ready_fails_only_for_what_leaves_the_part_nothing_to_serve(
    name: str, infra: TestInfra, tmp_path: Path
) -> None:
    async with _behind_proxies(name, infra, tmp_path) as (part, proxies):
        body = await _ready(part, want=200, down=[])
        assert body["status"] == "ready"
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert {n for n, c in checks.items() if c["required"]} == REQUIRED[name]

        for dependency, proxy in proxies.items():
            await proxy.stop()
            if dependency in REQUIRED[name]:
                body = await _ready(part, want=503, down=[dependency])
                assert body["status"] == "not_ready"
            else:
                body = await _ready(part, want=200, down=[dependency])
                assert body["status"] == "degraded"
            await proxy.start()
            await _ready(part, want=200, down=[])
