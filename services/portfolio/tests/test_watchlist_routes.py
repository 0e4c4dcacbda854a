"""Watchlist routes in process on the real PostgreSQL, Redis and NATS, with market's
``market.rpc.quotes`` and recommendations' ``recommendations.rpc.latest`` served by the
test (either can be down). Grouped per behaviour."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from services.portfolio.tests.support import PRICES, SECTORS, ticker
from services.portfolio.watchlists.domain import MAX_LISTS_PER_USER, MAX_TICKERS_PER_LIST
from services.portfolio.watchlists.schemas import WatchlistView
from shared.db import open_connection
from shared.messaging import Delivered
from tests.inprocess import InProcessApp

API = "/api/v1/watchlists"


class _Latest(BaseModel):
    tickers: list[str] | None = None
    cursor: str | None = None
    limit: int = 200


class _Any(BaseModel):
    model_config = {"extra": "allow"}


CALLS: dict[str, dict[str, Any]] = {}  # ticker -> the call recommendations answers
RUN_ID = uuid.uuid4()


@pytest.fixture
async def recommendations(portfolio: InProcessApp) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """recommendations.rpc.latest answering from ``CALLS``, one ticker a page (so the
    client's paging is walked)."""

    async def latest(request: _Latest, _: Delivered) -> BaseModel:
        wanted = request.tickers or []
        at = int(request.cursor or 0)
        page = wanted[at : at + 1]
        return _Any(
            run_id=str(RUN_ID),
            as_of="2026-11-30",
            model_version="v1",
            generated_at="2026-11-30T22:00:00Z",
            calls=[{**CALLS[t], "ticker": t} for t in page if t in CALLS],
            missing=[t for t in page if t not in CALLS],
            next_cursor=str(at + 1) if at + 1 < len(wanted) else None,
        )

    bus = portfolio.app.state.resources.bus
    served = await bus.serve("recommendations.rpc.latest", _Latest, latest, queue=None)
    yield CALLS
    await served.unsubscribe()


def quoted(price: float, sector: str | None = None) -> str:
    symbol = ticker()
    PRICES[symbol] = price
    if sector:
        SECTORS[symbol] = sector
    return symbol


def call(symbol: str, action: str, confidence: float, target: float | None) -> None:
    CALLS[symbol] = {
        "id": str(uuid.uuid4()),
        "action": action,
        "confidence": confidence,
        "score": 0.5,
        "target_price": target,
        "price_at_call": 10.0,
        "horizon_days": 20,
        "hypothetical": False,
        "thesis": "...",
    }


async def create(
    app: InProcessApp, caller: dict[str, str], name: str, tickers: list[str]
) -> dict[str, Any]:
    response = await app.client.post(API, json={"name": name, "tickers": tickers}, headers=caller)
    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"v1"'
    body: dict[str, Any] = response.json()
    return body


async def outbox(app: InProcessApp, watchlist_id: str) -> list[dict[str, Any]]:
    """The watchlist's events queued in portfolio's outbox, oldest first."""
    settings = app.settings
    conn = await open_connection(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT subject, payload::text AS payload FROM portfolio.outbox"
            " WHERE payload->'data'->>'watchlist_id' = $1 ORDER BY id",
            watchlist_id,
        )
    finally:
        await conn.close()
    return [{"subject": r["subject"], **orjson.loads(r["payload"])} for r in rows]


# --- the view: quotes and recommendations ----------------------------------------------------


async def test_a_watchlist_answers_quotes_and_latest_calls_in_its_order(
    portfolio: InProcessApp, market: dict[str, float], recommendations: dict[str, Any]
) -> None:
    caller = portfolio.token()
    a, b, c = quoted(50.0, "Energy"), quoted(20.0), quoted(8.0)
    call(a, "BUY", 0.8, 60.0)
    call(c, "SELL", 0.6, None)
    made = await create(portfolio, caller, "Energy names", [b, a, c])
    response = await portfolio.client.get(f"{API}/{made['id']}", headers=caller)
    assert response.status_code == 200 and response.headers["ETag"] == '"v1"'
    view = WatchlistView.model_validate(response.json())
    assert [line.ticker for line in view.items] == [b, a, c]
    by = {line.ticker: line for line in view.items}
    quote, rec = by[a].quote, by[a].recommendation
    assert quote is not None and quote.price == 50.0
    assert quote.sector == "Energy" and by[a].status == "quoted"
    assert rec is not None and rec.action == "BUY" and str(rec.id) == CALLS[a]["id"]
    # The upside is the target over the current price, worked independently here.
    assert rec.upside == pytest.approx(60.0 / 50.0 - 1, rel=1e-12)
    assert by[b].recommendation is None  # no call for it in the run
    sell = by[c].recommendation
    assert sell is not None and sell.action == "SELL" and sell.upside is None
    assert view.recommendations_available and view.recommendation_run_id == RUN_ID
    assert view.quotes_available and view.prices_as_of is not None


async def test_recommendations_down_leaves_the_rest_of_the_answer(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a = quoted(12.5)
    made = await create(portfolio, caller, "Quiet", [a])
    body = (await portfolio.client.get(f"{API}/{made['id']}", headers=caller)).json()
    assert body["recommendations_available"] is False and body["recommendations_note"]
    assert body["items"][0]["quote"]["price"] == 12.5
    assert body["items"][0]["recommendation"] is None


async def test_a_ticker_market_stopped_quoting_is_shown_unknown(
    portfolio: InProcessApp, market: dict[str, float], recommendations: dict[str, Any]
) -> None:
    caller = portfolio.token()
    a = quoted(3.0)
    call(a, "HOLD", 0.5, 4.0)
    made = await create(portfolio, caller, "Later", [a])
    PRICES.pop(a)  # delisted since: market answers it missing
    body = (await portfolio.client.get(f"{API}/{made['id']}", headers=caller)).json()
    assert body["quotes_available"] is True
    assert body["items"][0]["status"] == "unknown" and body["items"][0]["quote"] is None
    assert body["items"][0]["recommendation"]["action"] == "HOLD"


async def test_without_market_quotes_are_unavailable_and_additions_wait(
    portfolio: InProcessApp, recommendations: dict[str, Any]
) -> None:
    caller = portfolio.token()
    # Created with no tickers (nothing to check), then read and changed with market away.
    made = await create(portfolio, caller, "Empty first", [])
    assert made["tickers"] == []
    response = await portfolio.client.post(
        f"{API}/{made['id']}/tickers", json={"ticker": "ACME"}, headers={**caller, "If-Match": "*"}
    )
    assert response.status_code == 503 and response.json()["error_code"] == "MARKET_UNAVAILABLE"
    # Reordering or removing needs no check: it works with market away.
    kept = await portfolio.client.put(
        f"{API}/{made['id']}/tickers", json={"tickers": []}, headers={**caller, "If-Match": "*"}
    )
    assert kept.status_code == 200


class _Quotes(BaseModel):
    tickers: list[str]


async def test_a_view_with_market_away_marks_the_quotes_unavailable(
    portfolio: InProcessApp, recommendations: dict[str, Any]
) -> None:
    caller = portfolio.token()
    a = ticker()
    call(a, "BUY", 0.9, 9.0)

    async def quotes(request: _Quotes, _: Delivered) -> BaseModel:
        return _Any(quotes=[{"ticker": a, "price": 7.0, "ts": 1}], missing=[])

    bus = portfolio.app.state.resources.bus
    served = await bus.serve("market.rpc.quotes", _Quotes, quotes, queue=None)
    made = await create(portfolio, caller, "Away", [a])
    await served.unsubscribe()  # market goes away
    body = (await portfolio.client.get(f"{API}/{made['id']}", headers=caller)).json()
    assert body["quotes_available"] is False and body["quotes_note"]
    line = body["items"][0]
    assert line["status"] == "unavailable" and line["quote"] is None
    assert line["recommendation"]["action"] == "BUY" and line["recommendation"]["upside"] is None


# --- changes ---------------------------------------------------------------------------------


async def test_add_remove_order_and_rename_with_etags_and_events(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a, b, c = quoted(1.0), quoted(2.0), quoted(3.0)
    made = await create(portfolio, caller, "Mine", [a])
    path = f"{API}/{made['id']}"

    missing = await portfolio.client.post(f"{path}/tickers", json={"ticker": b}, headers=caller)
    assert missing.status_code == 428
    stale = await portfolio.client.post(
        f"{path}/tickers", json={"ticker": b}, headers={**caller, "If-Match": '"v9"'}
    )
    assert stale.status_code == 412 and stale.json()["details"]["etag"] == '"v1"'

    added = await portfolio.client.post(
        f"{path}/tickers",
        json={"ticker": b.lower(), "position": 0},
        headers={**caller, "If-Match": '"v1"'},
    )
    assert added.status_code == 200 and added.json()["tickers"] == [b, a]
    assert added.headers["ETag"] == '"v2"'
    again = await portfolio.client.post(
        f"{path}/tickers", json={"ticker": b}, headers={**caller, "If-Match": "*"}
    )
    assert again.status_code == 409 and again.json()["error_code"] == "TICKER_ALREADY_LISTED"

    ordered = await portfolio.client.put(
        f"{path}/tickers", json={"tickers": [a, c, b]}, headers={**caller, "If-Match": '"v2"'}
    )
    assert ordered.status_code == 200 and ordered.json()["tickers"] == [a, c, b]
    twice = await portfolio.client.put(
        f"{path}/tickers", json={"tickers": [a, a]}, headers={**caller, "If-Match": "*"}
    )
    assert twice.status_code == 422 and twice.json()["error_code"] == "DUPLICATE_TICKER"

    removed = await portfolio.client.delete(
        f"{path}/tickers/{c}", headers={**caller, "If-Match": '"v3"'}
    )
    assert removed.status_code == 200 and removed.json()["tickers"] == [a, b]
    gone = await portfolio.client.delete(f"{path}/tickers/{c}", headers={**caller, "If-Match": "*"})
    assert gone.status_code == 404 and gone.json()["error_code"] == "TICKER_NOT_LISTED"

    renamed = await portfolio.client.patch(
        path, json={"name": "Renamed"}, headers={**caller, "If-Match": '"v4"'}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    deleted = await portfolio.client.delete(path, headers={**caller, "If-Match": '"v5"'})
    assert deleted.status_code == 204
    assert (await portfolio.client.get(path, headers=caller)).status_code == 404

    # One event per committed change, each with the whole list and its version, in order;
    # the refused changes (428, 412, 409, 422, 404) queued nothing.
    events = await outbox(portfolio, made["id"])
    assert {e["subject"] for e in events} == {"portfolio.watchlist.changed"}
    seen = [(e["data"]["version"], e["data"]["tickers"], e["data"]["deleted"]) for e in events]
    assert seen == [
        (1, [a], False),
        (2, [b, a], False),
        (3, [a, c, b], False),
        (4, [a, b], False),
        (5, [a, b], False),
        (6, [], True),
    ]
    assert all(e["data"]["owner_id"] == events[0]["data"]["owner_id"] for e in events)


async def test_unknown_tickers_are_refused_and_nothing_is_written(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a = quoted(5.0)
    response = await portfolio.client.post(
        API, json={"name": "Typo", "tickers": [a, "ZZZZZ"]}, headers=caller
    )
    assert response.status_code == 422 and response.json()["error_code"] == "UNKNOWN_TICKER"
    assert response.json()["details"]["tickers"] == ["ZZZZZ"]
    bad = await portfolio.client.post(
        API, json={"name": "Bad", "tickers": ["not a ticker"]}, headers=caller
    )
    assert bad.status_code == 422
    assert (await portfolio.client.get(API, headers=caller)).json()["items"] == []


async def test_concurrent_changes_with_one_etag_one_wins(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a, b, c = quoted(1.0), quoted(2.0), quoted(3.0)
    made = await create(portfolio, caller, "Race", [a])
    path = f"{API}/{made['id']}/tickers"
    answers = await asyncio.gather(
        *(
            portfolio.client.post(path, json={"ticker": t}, headers={**caller, "If-Match": '"v1"'})
            for t in (b, c)
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 412]
    listed = (await portfolio.client.get(API, headers=caller)).json()["items"][0]
    assert len(listed["tickers"]) == 2 and listed["version"] == 2


async def test_limits_on_lists_and_tickers(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    many = [quoted(1.0) for _ in range(MAX_TICKERS_PER_LIST + 1)]
    too_long = await portfolio.client.post(
        API, json={"name": "Big", "tickers": many}, headers=caller
    )
    assert too_long.status_code == 422
    full = await create(portfolio, caller, "Full", many[:MAX_TICKERS_PER_LIST])
    one_more = await portfolio.client.post(
        f"{API}/{full['id']}/tickers",
        json={"ticker": many[-1]},
        headers={**caller, "If-Match": "*"},
    )
    assert one_more.status_code == 409 and one_more.json()["error_code"] == "WATCHLIST_FULL"
    for n in range(1, MAX_LISTS_PER_USER):
        await create(portfolio, caller, f"List {n}", [])
    over = await portfolio.client.post(API, json={"name": "One too many"}, headers=caller)
    assert over.status_code == 409 and over.json()["error_code"] == "WATCHLIST_QUOTA_EXCEEDED"
    taken = await portfolio.client.post(API, json={"name": "Full"}, headers=portfolio.token())
    assert taken.status_code == 201  # names are per user


async def test_lists_page_with_a_cursor(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    for n in range(5):
        await create(portfolio, caller, f"L{n}", [])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await portfolio.client.get(API, params=params, headers=caller)).json()
        seen += [w["name"] for w in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"L{n}" for n in range(5)] and pages == 3
    forged = await portfolio.client.get(API, params={"cursor": "x.y"}, headers=caller)
    assert forged.status_code == 422 and forged.json()["error_code"] == "INVALID_CURSOR"


# --- ownership -------------------------------------------------------------------------------


async def test_another_users_watchlist_is_404_everywhere_and_unchanged(
    portfolio: InProcessApp, market: dict[str, float], recommendations: dict[str, Any]
) -> None:
    owner, stranger = portfolio.token(), portfolio.token()
    a, b = quoted(1.0), quoted(2.0)
    made = await create(portfolio, owner, "Private", [a])
    path = f"{API}/{made['id']}"
    h = {**stranger, "If-Match": "*"}
    answers = [
        await portfolio.client.get(path, headers=stranger),
        await portfolio.client.patch(path, json={"name": "Mine now"}, headers=h),
        await portfolio.client.delete(path, headers=h),
        await portfolio.client.put(f"{path}/tickers", json={"tickers": [b]}, headers=h),
        await portfolio.client.post(f"{path}/tickers", json={"ticker": b}, headers=h),
        await portfolio.client.delete(f"{path}/tickers/{a}", headers=h),
    ]
    for response in answers:
        assert response.status_code == 404, response.text
        assert response.json()["error_code"] == "WATCHLIST_NOT_FOUND"
        assert a not in response.text and "Private" not in response.text
    mine = (await portfolio.client.get(path, headers=owner)).json()
    assert mine["name"] == "Private" and mine["tickers"] == [a] and mine["version"] == 1
    assert len(await outbox(portfolio, made["id"])) == 1
