"""The price stream end to end: real processes, real NATS, real WebSocket clients.

Clients go through the gateway (``/api/v1/ws/...`` is proxied to the realtime service),
except where a test needs a particular node (the extra nodes started here).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.demo import DEMO_ACCOUNTS
from services.realtime.feeds import QuotesReply, QuotesRequest, Tick
from services.realtime.streams import protocol
from services.realtime.streams.limits import ConnectionLeases
from services.realtime.tests.support import (
    StalledReader,
    mint_token,
    publish_tick,
    stream,
    tick,
)
from shared.messaging import Bus, Delivered, connect_bus
from shared.redis import connect_redis
from tests.conftest import login
from tests.infra import TestInfra
from tests.platform import Platform, Process, wait_ready

pytestmark = pytest.mark.e2e

ACCOUNTS = {role: (username, password) for role, username, password in DEMO_ACCOUNTS}


def unique_ticker() -> str:
    """A ticker no other test uses (5 letters)."""
    return "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:5])


def stream_url(platform: Platform) -> str:
    """Through the gateway, as a browser would."""
    return platform.gateway_url


@pytest.fixture(scope="module")
async def bus(seeded: TestInfra) -> AsyncIterator[Bus]:
    bus = await connect_bus(seeded.nats_url, name="test-realtime", prefix=seeded.nats_prefix)
    try:
        yield bus
    finally:
        await bus.close()


async def token(gateway: httpx.AsyncClient, role: str = "viewer") -> dict[str, str]:
    """A real login through the gateway (the demo account of ``role``)."""
    return await login(gateway, *ACCOUNTS[role])


async def test_handshake_needs_a_valid_token(platform: Platform) -> None:
    for headers, query, code in (
        ({}, "", "UNAUTHENTICATED"),
        ({"Authorization": "Bearer a.b.c"}, "", "INVALID_TOKEN"),
        ({}, "access_token=forged", "INVALID_TOKEN"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with stream(
                stream_url(platform), "/api/v1/ws/prices", headers=headers, query=query
            ):
                pass
        response = refused.value.response
        assert response.status_code == 401
        body = orjson.loads(response.body)
        assert body["error_code"] == code
        assert set(body) == {"error_code", "message", "details", "timestamp", "request_id"}


async def test_subscribe_gets_snapshot_then_live_quotes(
    platform: Platform, gateway: httpx.AsyncClient, bus: Bus
) -> None:
    ticker = unique_ticker()
    asked: list[list[str]] = []

    async def quotes(request: QuotesRequest, _: Delivered) -> QuotesReply:
        asked.append(request.tickers)
        known = [
            Tick(**tick(t, 50.0, ts=1000).model_dump()) for t in request.tickers if t == ticker
        ]
        return QuotesReply(quotes=known, missing=[t for t in request.tickers if t != ticker])

    responder = await bus.serve("market.rpc.quotes", QuotesRequest, quotes, queue=None)
    try:
        headers = await token(gateway)  # the demo viewer; other tests use their own users
        async with stream(stream_url(platform), "/api/v1/ws/prices", headers=headers) as client:
            hello = await client.next()
            assert hello["type"] == "connected" and hello["limits"]["subscriptions"] == 50
            await client.send(action="subscribe", tickers=[ticker.lower(), "NOT A TICKER"])
            error = await client.of_type("error")
            assert error["code"] == "INVALID_TICKER" and error["details"]["invalid"] == [
                "NOT A TICKER"
            ]
            await client.send(action="subscribe", tickers=[ticker.lower()])
            ack = await client.of_type("subscribed")
            assert ack["tickers"] == [ticker] and ack["subscriptions"] == [ticker]
            snapshot = await client.of_type("quote")
            assert snapshot == {
                "type": "quote",
                "ticker": ticker,
                "price": 50.0,
                "change": -50.0,
                "change_percent": -50.0,
                "volume": 1000,
                "ts": 1000,
                "snapshot": True,
            }
            await publish_tick(bus, tick(ticker, 51.5))
            live = await client.of_type("quote")
            assert live["ticker"] == ticker and live["price"] == 51.5 and "snapshot" not in live
            assert asked == [[ticker]]

            # A second socket gets its snapshot from the node's cache: no request to market.
            async with stream(stream_url(platform), "/api/v1/ws/prices", headers=headers) as other:
                await other.send(action="subscribe", tickers=[ticker])
                cached = await other.of_type("quote")
                assert cached["price"] == 51.5 and cached["snapshot"] is True
            assert asked == [[ticker]]

            await client.send(action="unsubscribe", tickers=[ticker, "ZZZZ"])
            gone = await client.of_type("unsubscribed")
            assert gone["tickers"] == [ticker] and gone["subscriptions"] == []
            await publish_tick(bus, tick(ticker, 52.0))
            assert [m for m in await client.barrier() if m["type"] == "quote"] == []
    finally:
        await responder.unsubscribe()


async def test_pong_and_protocol_errors(platform: Platform) -> None:
    headers = mint_token(key_file(platform), f"pong-{uuid.uuid4().hex[:8]}")
    async with stream(stream_url(platform), "/api/v1/ws/prices", headers=headers) as client:
        await client.next()
        await client.ws.send("not json")
        assert (await client.next())["code"] == "BAD_MESSAGE"
        await client.send(action="dance")
        assert (await client.next())["code"] == "UNKNOWN_ACTION"
        await client.send(action="subscribe", tickers=[])
        assert (await client.next())["code"] == "BAD_MESSAGE"
        await client.send(action="ping", id=7)
        pong = await client.next()
        assert pong["type"] == "pong" and pong["id"] == 7


def key_file(platform: Platform) -> str:
    return platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"]


async def start_node(platform: Platform, tag: str, **overrides: str) -> Process:
    proc = platform.start_extra(
        "realtime", {f"REALTIME_{k.upper()}": v for k, v in overrides.items()}, tag=tag
    )
    await asyncio.to_thread(wait_ready, [proc])
    return proc


@pytest.fixture(scope="module")
async def tight_node(platform: Platform) -> AsyncIterator[Process]:
    """A second node with small limits, a short lag limit and quick heartbeats, using
    wildcard tick routing (the main node routes per ticker)."""
    proc = await start_node(
        platform,
        "-tight",
        viewer_max_subscriptions="3",
        viewer_max_connections="2",
        max_lag_seconds="1",
        heartbeat_seconds="0.5",
        tick_routing="wildcard",
    )
    yield proc
    proc.stop()


async def test_limits_depend_on_the_role(platform: Platform, tight_node: Process) -> None:
    user = f"limits-{uuid.uuid4().hex[:8]}"
    viewer = mint_token(key_file(platform), user, "viewer")
    analyst = mint_token(key_file(platform), f"{user}-a", "analyst")
    url = tight_node.url
    async with stream(url, "/api/v1/ws/prices", headers=viewer) as first:
        await first.send(action="subscribe", tickers=["AAA", "BBB", "CCC", "DDD", "EEE"])
        ack = await first.of_type("subscribed")
        assert ack["subscriptions"] == ["AAA", "BBB", "CCC"]
        limit = await first.of_type("error")
        assert limit["code"] == "SUBSCRIPTION_LIMIT"
        assert limit["details"] == {"limit": 3, "rejected": ["DDD", "EEE"]}
        async with stream(url, "/api/v1/ws/alerts", headers=viewer) as second:
            await second.of_type("connected")
            async with stream(url, "/api/v1/ws/prices", headers=viewer) as third:
                refused = await third.next()
                assert refused["type"] == "error" and refused["code"] == "CONNECTION_LIMIT"
                with pytest.raises(ConnectionClosed) as closed:
                    await third.next()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with stream(url, "/api/v1/ws/prices", headers=analyst) as roomy:
        hello = await roomy.next()
        assert hello["limits"]["subscriptions"] == 200
        await roomy.send(action="subscribe", tickers=["AAA", "BBB", "CCC", "DDD", "EEE"])
        assert len((await roomy.of_type("subscribed"))["subscriptions"]) == 5


async def test_heartbeats_keep_an_idle_socket_company(
    platform: Platform, tight_node: Process
) -> None:
    headers = mint_token(key_file(platform), f"idle-{uuid.uuid4().hex[:8]}")
    async with stream(tight_node.url, "/api/v1/ws/prices", headers=headers) as client:
        await client.of_type("connected")
        beat = await client.of_type("heartbeat", timeout=3)
        assert beat["ts"] > 0


async def test_each_client_gets_exactly_its_tickers(platform: Platform, bus: Bus) -> None:
    tickers = [unique_ticker() for _ in range(8)]
    wanted = [
        sorted({tickers[i % 8], tickers[(i * 3 + 1) % 8], tickers[(i + 5) % 8]}) for i in range(12)
    ]
    rounds = 25
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i, mine in enumerate(wanted):
            headers = mint_token(key_file(platform), f"fanout-{i}-{uuid.uuid4().hex[:6]}")
            client = await stack.enter_async_context(
                stream(stream_url(platform), "/api/v1/ws/prices", headers=headers)
            )
            await client.send(action="subscribe", tickers=mine)
            await client.of_type("subscribed")
            clients.append(client)
        for n in range(1, rounds + 1):
            for ticker in tickers:
                await publish_tick(bus, tick(ticker, float(n)))
        for client, mine in zip(clients, wanted, strict=True):
            last: dict[str, float] = {}
            while any(last.get(t) != float(rounds) for t in mine):
                quote = await client.of_type("quote")
                assert quote["ticker"] in mine, f"{quote['ticker']} not in {mine}"
                # Conflation may skip prices, never reorder them.
                assert quote["price"] > last.get(quote["ticker"], 0.0)
                last[quote["ticker"]] = quote["price"]
            extra = [m for m in await client.barrier() if m["type"] == "quote"]
            assert extra == []


async def test_a_slow_client_is_conflated_then_dropped_while_a_fast_one_keeps_up(
    platform: Platform, tight_node: Process, bus: Bus
) -> None:
    tickers = [unique_ticker() for _ in range(20)]
    headers = mint_token(key_file(platform), f"speed-{uuid.uuid4().hex[:8]}", "analyst")
    url = tight_node.url
    slow = await asyncio.to_thread(StalledReader, url, "/api/v1/ws/prices", headers)
    async with (
        stream(url, "/api/v1/ws/prices", headers=headers) as fast,
        httpx.AsyncClient(base_url=url) as http,
    ):
        slow.send(action="subscribe", tickers=tickers)
        await fast.send(action="subscribe", tickers=tickers)
        await fast.of_type("subscribed")
        latencies: list[int] = []
        publishing = True

        async def read_fast() -> None:
            while publishing:
                message = await fast.next(timeout=5)
                if message["type"] == "quote":
                    latencies.append(protocol.now_ms() - message["ts"])

        reader = asyncio.create_task(read_fast())
        deadline = asyncio.get_running_loop().time() + 20
        price = 0.0
        try:
            while (await slow_disconnects(http)) < 1:
                assert asyncio.get_running_loop().time() < deadline, "slow client never dropped"
                for _ in range(10):  # ~2,000 ticks/s, 20 tickers
                    price += 1
                    for ticker in tickers:
                        await publish_tick(bus, tick(ticker, price))
                    await asyncio.sleep(0.01)  # pacing the feed, not synchronising
        finally:
            publishing = False
            await asyncio.wait_for(reader, 10)
        metrics = (await http.get("/metrics")).text
        assert metric(metrics, "realtime_messages_conflated_total") > 0
        latencies.sort()
        assert len(latencies) > 1000
        p99 = latencies[int(len(latencies) * 0.99)]
        assert p99 < 250, f"fast client p99 {p99} ms"
        # The slow client, reading at last, finds its quotes and then the close (4008).
        code, reason, frames = await asyncio.to_thread(slow.read_until_close)
        slow.close()
        assert (code, reason) == (4008, "slow consumer") and frames > 0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def slow_disconnects(http: httpx.AsyncClient) -> float:
    return metric((await http.get("/metrics")).text, "realtime_slow_consumer_disconnects_total")


async def test_two_nodes_each_deliver_every_tick(
    platform: Platform, tight_node: Process, bus: Bus
) -> None:
    ticker = unique_ticker()
    headers = mint_token(key_file(platform), f"two-{uuid.uuid4().hex[:8]}", "analyst")
    async with (
        stream(stream_url(platform), "/api/v1/ws/prices", headers=headers) as one,
        stream(tight_node.url, "/api/v1/ws/prices", headers=headers) as two,
    ):
        for client in (one, two):
            await client.send(action="subscribe", tickers=[ticker])
            await client.of_type("subscribed")
        for n in range(1, 51):
            await publish_tick(bus, tick(ticker, float(n)))
        for client in (one, two):
            await client.until(lambda m: m["type"] == "quote" and m["price"] == 50.0)


async def test_shutdown_tells_clients_to_reconnect(platform: Platform) -> None:
    node = await start_node(platform, "-shutdown")
    headers = mint_token(key_file(platform), f"bye-{uuid.uuid4().hex[:8]}")
    async with stream(node.url, "/api/v1/ws/prices", headers=headers) as client:
        await client.send(action="subscribe", tickers=["ACME"])
        await client.of_type("subscribed")
        stopping = asyncio.create_task(asyncio.to_thread(node.stop))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.next(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
        assert await stopping in (0, -signal.SIGTERM)
    log = node.log_text()
    assert "Shutting down" in log and "NATS connection closed" in log
    assert "Traceback" not in log


async def test_leases_of_open_sockets_are_renewed(infra: TestInfra) -> None:
    # A node renews its sockets' leases before they expire, so an old socket still counts;
    # renewal goes by chunks of 500, so hold more than one chunk.
    redis = connect_redis(infra.redis_url, prefix=f"{infra.redis_prefix}leases-{uuid.uuid4()}:")
    leases = ConnectionLeases(redis, ttl=3.0)
    await leases.start()
    try:
        held = [await leases.take("user-1", 501) for _ in range(501)]
        assert all(held)
        await asyncio.sleep(4.0)  # past the ttl: only renewal keeps them
        assert await leases.take("user-1", 501) is None
    finally:
        await leases.stop()
        await redis.client.aclose()
