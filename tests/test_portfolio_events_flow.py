"""Portfolio's events across the processes: a split market announces reaches the holders'
ledgers through JetStream (once, however often it is delivered); a call that turned SELL
flags the holding and arrives as an alert on the owner's /ws/alerts, through the
gateway, and stays in their alert history. Events are built with the publishers' own
models, so this is also their contract with the consumers, on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.market import events as market
from services.realtime.tests.support import mint_token, stream
from services.recommendations import events as recommendations
from shared.messaging import Bus, Event, connect_bus
from tests.infra import TestInfra
from tests.platform import Platform

pytestmark = pytest.mark.e2e


def unique_ticker() -> str:
    return "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:5])


@pytest.fixture(scope="module")
async def bus(seeded: TestInfra) -> AsyncIterator[Bus]:
    bus = await connect_bus(seeded.nats_url, name="test-pf-events", prefix=seeded.nats_prefix)
    try:
        yield bus
    finally:
        await bus.close()


def user(platform: Platform) -> dict[str, str]:
    key_file = platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"]
    return mint_token(key_file, f"viewer-{uuid.uuid4().hex[:12]}", "viewer")


def at(day: date, days: int) -> str:
    """``days`` after ``day``, at 15:00 UTC."""
    return f"{day + timedelta(days=days)}T15:00:00Z"


async def record(gateway: httpx.AsyncClient, caller: dict[str, str], **body: Any) -> None:
    response = await gateway.post(
        "/api/v1/portfolio/transactions", json=body, headers={**caller, "If-Match": "*"}
    )
    assert response.status_code == 201, response.text


async def settled(bus: Bus, stream: str, durable: str, timeout: float = 30.0) -> None:
    """Until ``durable`` exists on ``stream`` and has nothing pending or unacknowledged."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            info = await bus.client.jsm().consumer_info(bus.stream_name(stream), durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        except Exception:  # not attached yet
            pass
        assert asyncio.get_running_loop().time() < deadline, f"{durable} never settled"
        await asyncio.sleep(0.1)


async def position(gateway: httpx.AsyncClient, caller: dict[str, str]) -> dict[str, Any]:
    response = await gateway.get("/api/v1/portfolio", headers=caller)
    assert response.status_code == 200, response.text
    [found] = response.json()["positions"]
    held: dict[str, Any] = found
    return held


async def test_a_split_market_announces_is_applied_to_the_holders_once(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    ticker = unique_ticker()
    ex = date.today() - timedelta(days=10)
    holder, latecomer = user(platform), user(platform)
    for caller in (holder, latecomer):
        await record(gateway, caller, kind="DEPOSIT", amount="5000", executed_at=at(ex, -30))
    await record(
        gateway, holder, kind="BUY", ticker=ticker, quantity="7", price="40", fee="1",
        executed_at=at(ex, -20),
    )  # fmt: skip
    await record(
        gateway, latecomer, kind="BUY", ticker=ticker, quantity="5", price="10",
        executed_at=at(ex, 2),
    )  # fmt: skip
    before = await position(gateway, holder)
    split = market.RecordedAction(
        ticker=ticker, ex_date=ex, kind="split", value=4.0, data_source="test"
    )
    [event] = market.actions_events([split])
    await bus.publish_event(market.ACTIONS_RECORDED, event)
    # Delivered again past JetStream's dedupe window: the inbox absorbs it.
    await bus.publish_event_raw(
        market.ACTIONS_RECORDED, event.model_dump_json().encode(), msg_id=f"again-{event.event_id}"
    )
    await settled(bus, market.STREAM, "portfolio-corporate-actions")
    after = await position(gateway, holder)
    assert Decimal(after["quantity"]) == 4 * Decimal(before["quantity"]) == 28
    assert after["cost_basis"] == before["cost_basis"] == "281.0000"
    assert Decimal(after["average_cost"]) == Decimal("10.035714")
    late = await position(gateway, latecomer)
    assert Decimal(late["quantity"]) == 5  # bought after the ex-date: post-split shares


async def test_a_call_turning_sell_alerts_the_holder_on_their_alert_stream(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    ticker = unique_ticker()
    holder, other = user(platform), user(platform)
    await record(gateway, holder, kind="DEPOSIT", amount="1000")
    await record(gateway, holder, kind="BUY", ticker=ticker, quantity="3", price="20")
    await record(gateway, other, kind="DEPOSIT", amount="1000")  # holds nothing
    call = recommendations.ActionChanged(
        recommendation_id=uuid.uuid4(),
        ticker=ticker,
        action="SELL",
        previous_action="HOLD",
        confidence=0.72,
        price_at_call=20.0,
        target_price=15.0,
    )
    run = Event[recommendations.RunCompleted](
        event_type=recommendations.RUN_COMPLETED,
        schema_version=recommendations.RUN_COMPLETED_VERSION,
        source=recommendations.SOURCE,
        data=recommendations.RunCompleted(
            run_id=uuid.uuid4(),
            as_of=date.today(),
            model_version="test",
            generated_at=datetime.now(UTC),
            total_recommendations=1,
            part=1,
            parts=1,
            changes=[call],
        ),
    )
    url = platform.gateway_url
    async with (
        stream(url, "/api/v1/ws/alerts", headers=holder) as mine,
        stream(url, "/api/v1/ws/alerts", headers=other) as theirs,
    ):
        for client in (mine, theirs):
            await client.of_type("connected")
        await bus.publish_event(recommendations.RUN_COMPLETED, run)
        await bus.publish_event_raw(
            recommendations.RUN_COMPLETED,
            run.model_dump_json().encode(),
            msg_id=f"again-{run.event_id}",
        )
        alert = await mine.of_type("alert", timeout=30)
        await settled(bus, recommendations.STREAM, "portfolio-sell-flags")
        await settled(bus, "PORTFOLIO", "realtime-holding-alerts")
        assert [m for m in await mine.barrier() if m["type"] == "alert"] == []  # only one
        assert [m for m in await theirs.barrier() if m["type"] == "alert"] == []
    assert alert["condition"] == "holding_turned_sell" and alert["ticker"] == ticker
    assert alert["data"]["recommendation_id"] == str(call.recommendation_id)
    assert alert["data"]["confidence"] == 0.72 and alert["data"]["quantity"] == "3.0000000000"
    flagged = await position(gateway, holder)
    assert flagged["sell_flag"]["recommendation_id"] == str(call.recommendation_id)
    history = await gateway.get("/api/v1/alerts/history", headers=holder)
    assert [a["id"] for a in history.json()["items"]] == [alert["id"]]
