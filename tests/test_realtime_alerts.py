"""Alert rules and alerts end to end: REST through the gateway, rules evaluated on the
live tick stream by two realtime nodes, alerts pushed to the owner's sockets on both
nodes, replayed on reconnect, never shown to anyone else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.realtime.feeds import HistoryReply, HistoryRequest, RunCompleted
from services.realtime.tests.support import StreamClient, mint_token, publish_tick, stream, tick
from services.recommendations import events as publisher
from shared.messaging import Bus, Delivered, Event, connect_bus
from tests.infra import TestInfra
from tests.platform import Platform, Process, wait_ready

pytestmark = pytest.mark.e2e

ALERTS = "/api/v1/ws/alerts"


def unique_ticker() -> str:
    return "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:5])


@pytest.fixture(scope="module")
async def bus(seeded: TestInfra) -> AsyncIterator[Bus]:
    bus = await connect_bus(seeded.nats_url, name="test-alerts", prefix=seeded.nats_prefix)
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture(scope="module")
async def second_node(platform: Platform) -> AsyncIterator[Process]:
    proc = platform.start_extra("realtime", {}, tag="-alerts")
    await asyncio.to_thread(wait_ready, [proc])
    yield proc
    proc.stop()


def user(platform: Platform, role: str = "viewer") -> dict[str, str]:
    """Headers for a fresh user of ``role`` (a token signed with the gateway's key, as
    the gateway issues them): tests do not share users, so they share no limits."""
    key_file = platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"]
    return mint_token(key_file, f"{role}-{uuid.uuid4().hex[:12]}", role)


async def rule(
    gateway: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> dict[str, Any]:
    response = await gateway.post("/api/v1/alerts", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def alerts_of(client: StreamClient, count: int) -> list[dict[str, Any]]:
    found = [await client.of_type("alert", timeout=10) for _ in range(count)]
    rest = [m for m in await client.barrier() if m["type"] == "alert"]
    assert rest == [], f"more alerts than expected: {rest}"
    return found


async def test_rules_are_validated_and_private(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    viewer, analyst = user(platform), user(platform, "analyst")
    ticker = unique_ticker()
    for body, field in (
        ({"condition": "percent_move_up"}, "threshold"),
        ({"condition": "ma_cross_above"}, "window_days"),
        ({"condition": "recommendation_change", "threshold": "5"}, "threshold"),
        ({"condition": "price_below", "threshold": "5", "window_days": 20}, "window_days"),
    ):
        refused = await gateway.post(
            "/api/v1/alerts", json={"ticker": ticker, **body}, headers=viewer
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error_code"] == "INVALID_ALERT_RULE"
        assert refused.json()["details"] == {"field": field}
    malformed = await gateway.post(
        "/api/v1/alerts", json={"ticker": "lower", "condition": "price_above"}, headers=viewer
    )
    assert malformed.json()["error_code"] == "VALIDATION_ERROR"

    made = [
        await rule(gateway, viewer, ticker=ticker, condition="percent_move_down", threshold="3"),
        await rule(gateway, viewer, ticker=ticker, condition="ma_cross_below", window_days=50),
        await rule(gateway, viewer, ticker=ticker, condition="recommendation_change"),
    ]
    assert [r["armed"] for r in made] == [True, True, True]
    rule_id = made[0]["id"]
    for method in ("GET", "PATCH", "DELETE"):
        stolen = await gateway.request(
            method, f"/api/v1/alerts/{rule_id}", json={"active": False}, headers=analyst
        )
        assert stolen.status_code == 404 and stolen.json()["error_code"] == "ALERT_RULE_NOT_FOUND"
    changed = await gateway.patch(
        f"/api/v1/alerts/{rule_id}",
        json={"threshold": "4.5", "cooldown_seconds": 0},
        headers=viewer,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["threshold"] == "4.5000" and changed.json()["cooldown_seconds"] == 0
    mine = (await gateway.get(f"/api/v1/alerts/{rule_id}", headers=viewer)).json()
    assert mine["threshold"] == "4.5000"
    for r in made:
        assert (
            await gateway.delete(f"/api/v1/alerts/{r['id']}", headers=viewer)
        ).status_code == 204


async def test_an_alert_fires_once_per_crossing_on_every_socket_of_its_owner_only(
    platform: Platform, gateway: httpx.AsyncClient, second_node: Process, bus: Bus
) -> None:
    viewer, analyst = user(platform), user(platform, "analyst")
    mine, theirs = unique_ticker(), unique_ticker()
    created = await rule(
        gateway, viewer, ticker=mine, condition="price_above", threshold="100", cooldown_seconds=0
    )
    await rule(gateway, analyst, ticker=theirs, condition="price_below", threshold="10")
    main = platform.gateway_url  # the gateway proxies to the platform's realtime node
    async with (
        stream(main, ALERTS, headers=viewer) as here,
        stream(second_node.url, ALERTS, headers=viewer) as there,
        stream(main, ALERTS, headers=analyst) as other,
    ):
        for client in (here, there, other):
            await client.of_type("connected")
        for price in (101.0, 102.0, 99.0, 103.0):  # crosses up twice
            await publish_tick(bus, tick(mine, price))
        await publish_tick(bus, tick(theirs, 9.0))
        first = await alerts_of(here, 2)
        assert [a["ticker"] for a in first] == [mine, mine]
        assert [a["data"]["price"] for a in first] == [101.0, 103.0]
        assert first[0]["rule_id"] == created["id"] and first[0]["condition"] == "price_above"
        assert first[0]["id"] < first[1]["id"]
        assert await alerts_of(there, 2) == first
        theirs_alerts = await alerts_of(other, 1)
        assert theirs_alerts[0]["ticker"] == theirs
    history = (await gateway.get("/api/v1/alerts/history", headers=analyst)).json()["items"]
    assert mine not in {a["ticker"] for a in history}
    mine_history = (await gateway.get("/api/v1/alerts/history", headers=viewer)).json()["items"]
    assert [a["id"] for a in mine_history if a["ticker"] == mine] == [
        first[1]["id"],
        first[0]["id"],
    ]


async def test_a_reconnecting_client_gets_what_it_missed_in_order(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    viewer = user(platform)
    ticker = unique_ticker()
    await rule(
        gateway,
        viewer,
        ticker=ticker,
        condition="percent_move_up",
        threshold="5",
        cooldown_seconds=0,
    )
    url = platform.gateway_url
    async with stream(url, ALERTS, headers=viewer) as client:
        await client.of_type("connected")
        await publish_tick(bus, tick(ticker, 106.0))  # +6% on the day
        (seen,) = await alerts_of(client, 1)
    # Offline: two more crossings.
    for price in (101.0, 107.0, 100.0, 108.0):
        await publish_tick(bus, tick(ticker, price))
    # The node writes alerts asynchronously to the ticks: wait until both are stored.
    for _ in range(200):
        page = await gateway.get("/api/v1/alerts/history", params={"limit": 5}, headers=viewer)
        if [a["data"]["price"] for a in page.json()["items"] if a["ticker"] == ticker][:2] == [
            108.0,
            107.0,
        ]:
            break
        await asyncio.sleep(0.05)
    async with stream(url, ALERTS, headers=viewer, query=f"last_alert_id={seen['id']}") as again:
        await again.of_type("connected")
        resumed = await again.of_type("resumed")
        assert resumed["after"] == seen["id"] and resumed["truncated"] is False
        missed = [await again.of_type("alert") for _ in range(resumed["count"])]
        ours = [a for a in missed if a["ticker"] == ticker]
        assert [a["data"]["price"] for a in ours] == [107.0, 108.0]
        assert [a["id"] for a in missed] == sorted(a["id"] for a in missed)
        await publish_tick(bus, tick(ticker, 90.0))
        await publish_tick(bus, tick(ticker, 109.0))
        live = await again.until(lambda m: m["type"] == "alert" and m["ticker"] == ticker)
        assert live["data"]["price"] == 109.0


async def test_moving_average_rules_use_market_history(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    viewer = user(platform)
    ticker = unique_ticker()

    async def history(request: HistoryRequest, _: Delivered) -> HistoryReply:
        # As market answers (services/market/events.py): 30 sessions closing at 100.
        days = [request.end - timedelta(days=d) for d in range(30, 0, -1)]
        series = [{"ticker": request.tickers[0], "dates": days, "closes": [100.0] * 30}]
        return HistoryReply.model_validate({"series": series, "missing": []})

    responder = await bus.serve("market.rpc.history", HistoryRequest, history, queue=None)
    try:
        await rule(
            gateway,
            viewer,
            ticker=ticker,
            condition="ma_cross_above",
            window_days=20,
            cooldown_seconds=0,
        )
        url = platform.gateway_url
        async with stream(url, ALERTS, headers=viewer) as client:
            await client.of_type("connected")
            # The first tick makes the node ask market for the average; later ticks compare.
            fired = asyncio.create_task(client.of_type("alert", timeout=15))
            price = 99.0
            while not fired.done():
                assert price < 130, "the moving-average rule never fired"
                price += 0.5
                await publish_tick(bus, tick(ticker, price))
                await asyncio.wait({fired}, timeout=0.1)
            alert = fired.result()
            assert alert["ticker"] == ticker and alert["data"]["moving_average"] == 100.0
            assert alert["data"]["window_days"] == 20
    finally:
        await responder.unsubscribe()


async def test_a_recommendation_change_fires_once(
    platform: Platform, gateway: httpx.AsyncClient, second_node: Process, bus: Bus
) -> None:
    """Events built with the publisher's own model (services/recommendations/events.py), on
    its stream: also the contract test of realtime's consumer model."""
    viewer = user(platform)
    ticker = unique_ticker()
    await rule(gateway, viewer, ticker=ticker, condition="recommendation_change")

    def run(action: str, previous: str | None) -> Event[publisher.RunCompleted]:
        change = publisher.ActionChanged(
            recommendation_id=uuid.uuid4(),
            ticker=ticker,
            action=action,
            previous_action=previous,
            confidence=0.7,
            price_at_call=100.0,
            target_price=None,
        )
        data = publisher.RunCompleted(
            run_id=uuid.uuid4(),
            as_of=date.today(),
            model_version="test",
            generated_at=datetime.now(UTC),
            total_recommendations=1,
            part=1,
            parts=1,
            changes=[change],
        )
        return Event[publisher.RunCompleted](
            event_type=publisher.RUN_COMPLETED, source=publisher.SOURCE, data=data
        )

    first, changed, same = run("BUY", None), run("SELL", "BUY"), run("SELL", "SELL")
    assert Event[RunCompleted].model_validate_json(changed.model_dump_json()).data.changes[0]
    async with (
        stream(platform.gateway_url, ALERTS, headers=viewer) as here,
        stream(second_node.url, ALERTS, headers=viewer) as there,
    ):
        for client in (here, there):
            await client.of_type("connected")
        for event in (first, changed, same):
            await bus.publish_event(publisher.RUN_COMPLETED, event)
        # The same event again, past JetStream's dedupe: the consumer's inbox absorbs it.
        await bus.publish_event_raw(
            publisher.RUN_COMPLETED,
            changed.model_dump_json().encode(),
            msg_id=f"again-{changed.event_id}",
        )
        # Wait until the durable consumer (shared by both nodes) has settled them all.
        for _ in range(200):
            info = await bus.client.jsm().consumer_info(
                bus.stream_name(publisher.STREAM), "realtime-recommendation-alerts"
            )
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        for client in (here, there):
            (alert,) = await alerts_of(client, 1)
            assert alert["ticker"] == ticker
            assert alert["condition"] == "recommendation_change"
            assert alert["data"] == {
                "previous_action": "BUY",
                "action": "SELL",
                "run_id": str(changed.data.run_id),
            }
