"""Alert rules on a watchlist, in process on the real PostgreSQL, Redis and NATS:
realtime's copy of watchlist membership fed by ``portfolio.watchlist.changed`` from the
JetStream stream (published here with realtime's model of the event; the contract test
checks it against portfolio's), the rule's children following the list, and firing on a
tick of one of its tickers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from services.realtime.feeds import WATCHLIST_CHANGED, WatchlistChanged
from services.realtime.tests.support import publish_tick, tick
from shared.messaging import Bus, Event, connect_bus
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


@pytest.fixture(scope="module")
async def nats(infra: TestInfra) -> AsyncIterator[tuple[Bus, str]]:
    """Portfolio's stream declared before realtime starts (as portfolio does), on a
    prefix of this module's own."""
    prefix = f"{infra.nats_prefix}wl{uuid.uuid4().hex[:6]}"
    bus = await connect_bus(infra.nats_url, name="test-watchlists", prefix=prefix)
    await bus.ensure_stream("PORTFOLIO", [WATCHLIST_CHANGED])
    yield bus, prefix
    await bus.close()


@pytest.fixture(scope="module")
async def realtime(
    infra: TestInfra, nats: tuple[Bus, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app(
        "realtime", infra, tmp_path_factory.mktemp("rtw"), nats_prefix=nats[1]
    ) as running:
        yield running


def letters() -> str:
    return uuid.uuid4().hex.upper().translate(str.maketrans("0123456789", "GHIJKLMNOP"))[:5]


async def changed(
    bus: Bus, watchlist_id: uuid.UUID, owner: str, tickers: list[str], version: int, **kw: Any
) -> Event[WatchlistChanged]:
    event = Event[WatchlistChanged](
        event_type=WATCHLIST_CHANGED,
        source="portfolio",
        data=WatchlistChanged(
            watchlist_id=watchlist_id,
            owner_id=owner,
            name="L",
            tickers=tickers,
            version=version,
            **kw,
        ),
    )
    await bus.publish_event(WATCHLIST_CHANGED, event)
    return event


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


async def test_a_rule_on_a_watchlist_follows_the_list_and_fires_per_ticker(
    realtime: InProcessApp, nats: tuple[Bus, str]
) -> None:
    bus, _ = nats
    owner_id, stranger_id = str(uuid.uuid4()), str(uuid.uuid4())
    owner, stranger = realtime.token(subject=owner_id), realtime.token(subject=stranger_id)
    a, b, c = letters(), letters(), letters()
    wl = uuid.uuid4()
    rule_body = {"watchlist_id": str(wl), "condition": "price_above", "threshold": "100"}

    # Before realtime has heard of the list: not found (said so), nothing created.
    early = await realtime.client.post("/api/v1/alerts", json=rule_body, headers=owner)
    assert early.status_code == 404 and early.json()["error_code"] == "WATCHLIST_NOT_FOUND"

    await changed(bus, wl, owner_id, [a, b], 1)
    created: dict[str, Any] = {}

    async def made() -> bool:
        response = await realtime.client.post("/api/v1/alerts", json=rule_body, headers=owner)
        if response.status_code == 201:
            created.update(response.json())
        return response.status_code == 201

    await until(made)
    assert created["ticker"] is None and created["tickers"] == [a, b]
    assert created["watchlist_id"] == str(wl)

    # Another user's watchlist: refused as if it did not exist, and nothing made.
    theirs = await realtime.client.post("/api/v1/alerts", json=rule_body, headers=stranger)
    assert theirs.status_code == 404 and theirs.json()["error_code"] == "WATCHLIST_NOT_FOUND"
    assert (await realtime.client.get("/api/v1/alerts", headers=stranger)).json()["items"] == []
    both = await realtime.client.post(
        "/api/v1/alerts", json={**rule_body, "ticker": a}, headers=owner
    )
    assert both.status_code == 422

    # The list changes: the rule now covers b and c, not a.
    await changed(bus, wl, owner_id, [b, c], 2)
    path = f"/api/v1/alerts/{created['id']}"

    async def covers(tickers: list[str]) -> bool:
        return bool((await realtime.client.get(path, headers=owner)).json()["tickers"] == tickers)

    await until(lambda: covers([b, c]))
    # A late, older version (redelivered, or overtaken) changes nothing.
    await changed(bus, wl, owner_id, [a], 1)
    await asyncio.sleep(0.5)
    assert await covers([b, c])
    # One user's list under another owner's name is not taken either.
    await changed(bus, wl, stranger_id, [a], 9)
    await asyncio.sleep(0.3)
    assert await covers([b, c])

    # A tick of c above the threshold fires the rule once, named by the user's rule; a
    # tick of a (no longer in the list) fires nothing.
    evaluator = realtime.app.state.realtime.evaluator

    async def watching() -> bool:
        return c in evaluator._by_ticker and a not in evaluator._by_ticker

    await until(watching)
    await publish_tick(bus, tick(a, 150.0))
    await publish_tick(bus, tick(c, 150.0))

    async def fired() -> list[dict[str, Any]]:
        page = await realtime.client.get("/api/v1/alerts/history", headers=owner)
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    await until(lambda: _nonempty(fired))
    alerts = await fired()
    assert [(x["rule_id"], x["ticker"]) for x in alerts] == [(created["id"], c)]
    assert alerts[0]["data"]["watchlist_id"] == str(wl)

    # Changing the rule changes every child; deleting the list leaves it covering nothing.
    patched = await realtime.client.patch(path, json={"threshold": "200"}, headers=owner)
    assert patched.status_code == 200 and patched.json()["tickers"] == [b, c]
    await changed(bus, wl, owner_id, [], 3, deleted=True)
    await until(lambda: covers([]))
    await until(lambda: _absent(evaluator, [b, c]))
    assert (await realtime.client.delete(path, headers=owner)).status_code == 204


async def _nonempty(read: Callable[[], Awaitable[list[dict[str, Any]]]]) -> bool:
    return bool(await read())


async def _absent(evaluator: Any, tickers: list[str]) -> bool:
    return all(t not in evaluator._by_ticker for t in tickers)


async def test_a_redelivered_event_is_applied_once(
    realtime: InProcessApp, nats: tuple[Bus, str]
) -> None:
    bus, _ = nats
    owner_id = str(uuid.uuid4())
    owner = realtime.token(subject=owner_id)
    wl = uuid.uuid4()
    await changed(bus, wl, owner_id, ["AAA"], 1)
    rule_body = {"watchlist_id": str(wl), "condition": "recommendation_change"}

    async def made() -> bool:
        response = await realtime.client.post("/api/v1/alerts", json=rule_body, headers=owner)
        return response.status_code == 201

    await until(made)
    event = await changed(bus, wl, owner_id, ["AAA", "BBB"], 2)
    handler = realtime.app.state.realtime.watchlists
    # The consumer's handler, given the same event again (as JetStream would redeliver it).
    await handler.handle(event, None)
    await handler.handle(event, None)
    rules = (await realtime.client.get("/api/v1/alerts", headers=owner)).json()["items"]
    assert len(rules) == 1 and rules[0]["tickers"] == ["AAA", "BBB"]
