"""What the issue calls done: a browser-like client logs in, opens both sockets through
the gateway (token in the query: browsers cannot set WebSocket headers), sees live
prices and its own alert."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.demo import DEMO_ACCOUNTS
from services.realtime.tests.support import publish_tick, stream, tick
from shared.messaging import Bus, connect_bus
from tests.infra import TestInfra
from tests.platform import Platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def bus(seeded: TestInfra) -> AsyncIterator[Bus]:
    bus = await connect_bus(seeded.nats_url, name="test-browser", prefix=seeded.nats_prefix)
    try:
        yield bus
    finally:
        await bus.close()


async def test_log_in_then_watch_prices_and_alerts(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    _, username, password = DEMO_ACCOUNTS[0]
    login = await gateway.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    token = login.json()["access_token"]
    ticker = "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:4])
    rule = await gateway.post(
        "/api/v1/alerts",
        json={"ticker": ticker, "condition": "price_below", "threshold": "50"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert rule.status_code == 201, rule.text
    query = f"access_token={token}"
    async with (
        stream(platform.gateway_url, "/api/v1/ws/prices", query=query) as prices,
        stream(platform.gateway_url, "/api/v1/ws/alerts", query=query) as alerts,
    ):
        await prices.of_type("connected")
        await alerts.of_type("connected")
        await prices.send(action="subscribe", tickers=[ticker])
        await prices.of_type("subscribed")
        await publish_tick(bus, tick(ticker, 49.5))
        quote = await prices.of_type("quote")
        assert (quote["ticker"], quote["price"]) == (ticker, 49.5)
        alert = await alerts.of_type("alert")
        assert alert["ticker"] == ticker and alert["rule_id"] == rule.json()["id"]
        assert alert["message"].startswith(f"{ticker} fell below 50")
