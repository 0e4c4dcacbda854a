"""A lost dependency, as a client and an operator see it: ``503`` with ``Retry-After`` and
the dependency named, one WARNING per outage (not per request), no traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import nats.errors
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.db import create_pool
from shared.db.transaction import DATABASE_ERRORS
from shared.health import Outages
from shared.http import create_service_app
from shared.messaging import (
    Delivered,
    MessagingUnavailableError,
    RemoteError,
    RequestTimeoutError,
    connect_bus,
)
from shared.tests.support import NATS_URL

router = APIRouter()


@router.get("/postgres-lost")
async def postgres_lost() -> None:
    # What asyncpg raises when the server goes away in the middle of a query.
    raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")


@router.get("/postgres-refused")
async def postgres_refused() -> None:
    # A route that takes the pool itself (a cached read's build) while the server is down:
    # asyncpg lets the socket's ConnectionRefusedError through; the pool names it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    pool = await create_pool(
        f"postgresql://nobody@127.0.0.1:{port}/none",
        schema="none",
        application_name="t",
        min_size=0,
    )
    try:
        async with pool.acquire():
            pass
    finally:
        await pool.close()


@router.get("/socket-bug")
async def socket_bug() -> None:
    raise ConnectionRefusedError(111, "not a database: some other socket")


@router.get("/postgres-shut-down")
async def postgres_shut_down() -> None:
    # What asyncpg raises when the server's shutdown message lands mid-protocol.
    raise asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )


@router.get("/redis-lost")
async def redis_lost() -> None:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@router.get("/nats-lost")
async def nats_lost() -> None:
    raise nats.errors.ConnectionClosedError()


@router.get("/nats-unavailable")
async def nats_unavailable() -> None:
    raise MessagingUnavailableError(subject="market.rpc.quotes")


@router.get("/market-silent")
async def market_silent() -> None:
    raise RequestTimeoutError(subject="market.rpc.quotes")


@router.get("/bug")
async def bug() -> None:
    raise ValueError("a bug")


class Switch:
    """A readiness check the test turns on and off."""

    def __init__(self) -> None:
        self.up = False

    async def __call__(self) -> None:
        if not self.up:
            raise ConnectionError("down")


@asynccontextmanager
async def _no_resources(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    app = create_service_app(
        name="test", title="t", version="0", lifespan=_no_resources, routers=[router]
    )
    app.state.outages = Outages(lambda: app.state.readiness_checks, probe_interval=0.05)
    app.state.readiness_checks = {"postgres": Switch(), "redis": Switch(), "nats": Switch()}
    yield app
    await app.state.outages.close()


def client(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions (the default): an exception the app re-raises after answering
    # (which the server would log as a second traceback) fails the test.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    ("path", "code", "dependency"),
    [
        ("/postgres-lost", "DATABASE_UNAVAILABLE", "postgres"),
        ("/postgres-refused", "DATABASE_UNAVAILABLE", "postgres"),
        ("/postgres-shut-down", "DATABASE_UNAVAILABLE", "postgres"),
        ("/redis-lost", "REDIS_UNAVAILABLE", "redis"),
        ("/nats-lost", "MESSAGING_UNAVAILABLE", "nats"),
        ("/nats-unavailable", "MESSAGING_UNAVAILABLE", "nats"),
        ("/market-silent", "DEPENDENCY_TIMEOUT", "market"),
    ],
)
async def test_a_lost_dependency_is_a_503_naming_it_with_retry_after(
    app: FastAPI, path: str, code: str, dependency: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with client(app) as c:
        with caplog.at_level(logging.INFO):
            response = await c.get(path)
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == code
    assert body["details"]["dependency"] == dependency
    assert int(response.headers["Retry-After"]) > 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_outage_logs_one_warning_then_one_line_when_it_is_back(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    checks = app.state.readiness_checks
    async with client(app) as c:
        with caplog.at_level(logging.INFO):
            for _ in range(20):
                assert (await c.get("/postgres-lost")).status_code == 503
            assert app.state.outages.down() == ["postgres"]
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "postgres unavailable" in warnings[0].getMessage()

            checks["postgres"].up = True
            for _ in range(100):
                if not app.state.outages.down():
                    break
                await asyncio.sleep(0.02)
            assert app.state.outages.down() == []
            back = [r.getMessage() for r in caplog.records if "is back after" in r.getMessage()]
            assert len(back) == 1 and "20 request(s)" in back[0], back

            # A new outage is a new episode: warned about again.
            checks["postgres"].up = False
            caplog.clear()
            await c.get("/postgres-lost")
            await c.get("/postgres-lost")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("path", ["/bug", "/socket-bug"])
async def test_a_bug_is_still_a_500_with_its_traceback_logged_once(
    app: FastAPI, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get(path)
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "Retry-After" not in response.headers
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


class Ask(BaseModel):
    n: int


async def test_a_request_over_nats_whose_database_is_down_is_a_503_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A part answering over NATS (market's history) while its database is down: the
    # requester (a recommendations run) must see a 503 it can wait out, not a 500.
    bus = await connect_bus(NATS_URL, name="test-rpc-outage", prefix=f"t{uuid.uuid4().hex[:10]}")
    bus.translate_errors((DATABASE_ERRORS,))

    async def handler(request: Ask, _: Delivered) -> Ask:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    responder = await bus.serve("market.rpc.history", Ask, handler)
    try:
        with caplog.at_level(logging.INFO), pytest.raises(RemoteError) as answered:
            await bus.request("market.rpc.history", Ask(n=1), Ask, timeout=2)
    finally:
        await responder.unsubscribe()
        await bus.close()
    assert answered.value.status_code == 503
    assert answered.value.error_code == "DATABASE_UNAVAILABLE"
    assert answered.value.details == {"dependency": "postgres"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
