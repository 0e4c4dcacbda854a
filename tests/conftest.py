"""Fixtures for cross-service tests: the whole platform as real processes."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bourse.parts import PARTS
from shared.db import open_connection
from shared.jwt import SigningKey
from tests.infra import TestInfra
from tests.platform import Platform, start_platform


@pytest.fixture(scope="session")
async def seeded(infra: TestInfra) -> TestInfra:
    """The session database with every part's demo data (users of each role included)."""
    for part in PARTS:
        try:
            demo = importlib.import_module(f"{part.module}.demo")
        except ModuleNotFoundError:
            continue
        conn = await open_connection(infra.dsn_for(part))
        try:
            await demo.seed_demo(conn)
        finally:
            await conn.close()
    return infra


@pytest.fixture(scope="session")
def platform(seeded: TestInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    work = tmp_path_factory.mktemp("platform")
    key_file = work / "jwt-signing.pem"
    key_file.write_bytes(SigningKey.generate().to_pem())
    key_file.chmod(0o600)
    running = start_platform(
        seeded,
        database=seeded.database,
        redis_prefix=seeded.redis_prefix,
        nats_prefix=seeded.nats_prefix,
        signing_key=key_file,
        log_dir=work,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def gateway(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10.0) as client:
        yield client


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    """Authorization headers for ``username``, obtained through the gateway."""
    response = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


__all__ = ["Path", "login"]
