"""Concurrency on the real PostgreSQL, through the routes: retries with one
Idempotency-Key, racing writers with one ETag, and racing SELLs. The requests really run
at once: each holds its own pooled connection and transaction, and the pool is smaller
than the burst, so they queue, interleave and contend for the same rows."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from services.portfolio.tests.support import deposit, etag, ledger_rows, post, ticker
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


async def test_a_thousand_concurrent_retries_with_one_key_make_one_trade(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "1000")
    current = await etag(portfolio, caller)
    body = {"ticker": ticker(), "quantity": "0.5", "price": "10.25"}

    async def attempt() -> httpx.Response:
        return await post(
            portfolio, "/api/v1/portfolio/positions", body, caller, if_match=current, key="retry"
        )

    async with asyncio.timeout(300):
        answers = await asyncio.gather(*(attempt() for _ in range(1000)))
    assert Counter(a.status_code for a in answers) == {201: 1000}
    assert len({a.text for a in answers}) == 1  # the same response, byte for byte
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 999
    rows = await ledger_rows(portfolio, caller)
    assert [r["kind"] for r in rows] == ["BUY", "DEPOSIT"]
    assert answers[0].json()["portfolio"]["cash"] == "994.8750"


async def test_two_changes_with_the_same_etag_one_wins_one_is_412(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "1000")
    for round_ in range(10):
        current = await etag(portfolio, caller)
        answers = await asyncio.gather(
            *(
                post(
                    portfolio,
                    "/api/v1/portfolio/transactions",
                    {"kind": "WITHDRAWAL", "amount": "1", "note": f"{round_}/{i}"},
                    caller,
                    if_match=current,
                )
                for i in range(2)
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 412], [a.text for a in answers]
    rows = await ledger_rows(portfolio, caller)
    assert len(rows) == 11
    assert (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()[
        "cash"
    ] == "990.0000"


async def test_two_renames_with_the_same_etag_one_wins_one_is_412(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["id"]
    current = await etag(portfolio, caller)
    answers = await asyncio.gather(
        *(
            portfolio.client.patch(
                f"/api/v1/portfolios/{pid}",
                json={"name": name},
                headers={**caller, "If-Match": current},
            )
            for name in ("left", "right")
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200).json()["name"]
    now = (await portfolio.client.get(f"/api/v1/portfolios/{pid}", headers=caller)).json()
    assert now["name"] == winner and now["version"] == 2


async def test_concurrent_sells_never_oversell(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    await deposit(portfolio, caller, "1000")
    buy = {"kind": "BUY", "ticker": symbol, "quantity": "10", "price": "10"}
    assert (await post(portfolio, "/api/v1/portfolio/transactions", buy, caller)).status_code == 201
    sell = {"kind": "SELL", "ticker": symbol, "quantity": "1", "price": "11"}

    async with asyncio.timeout(120):
        answers = await asyncio.gather(
            *(
                # If-Match: * -- no optimistic check, so only the ledger's rule stops them.
                post(portfolio, "/api/v1/portfolio/transactions", sell, caller, if_match="*")
                for _ in range(40)
            )
        )
    outcome = Counter(
        (a.status_code, a.json().get("error_code") if a.status_code != 201 else None)
        for a in answers
    )
    assert outcome == {(201, None): 10, (409, "INSUFFICIENT_QUANTITY"): 30}
    body = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()
    assert body["positions"] == []
    assert Decimal(body["cash"]) == Decimal("1000") - 100 + 10 * 11
    assert body["closed_positions"] == [
        {"ticker": symbol, "realised_pnl": "10.0000", "dividends": "0.0000"}
    ]


async def test_two_instances_never_answer_from_a_stale_state(
    portfolio: InProcessApp, infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each instance keeps ledger states in memory by version: a change made through
    the other instance is a new version, so it is read, never missed."""
    async with running_app("portfolio", infra, tmp_path_factory.mktemp("pf-b")) as other:
        subject = str(uuid.uuid4())
        via_a, via_b = portfolio.token(subject=subject), other.token(subject=subject)
        symbol = ticker()
        await deposit(portfolio, via_a, "100")
        assert (await portfolio.client.get("/api/v1/portfolio", headers=via_a)).json()[
            "cash"
        ] == "100.0000"  # A now holds this version's state
        await deposit(other, via_b, "50")
        buy = {"kind": "BUY", "ticker": symbol, "quantity": "3", "price": "10"}
        assert (await post(other, "/api/v1/portfolio/transactions", buy, via_b)).status_code == 201
        seen_by_a = (await portfolio.client.get("/api/v1/portfolio", headers=via_a)).json()
        assert seen_by_a["cash"] == "120.0000" and seen_by_a["positions"][0]["quantity"] == "3"
        # A change through A builds on what B wrote: 4 cannot be sold, 3 can.
        sell = {"kind": "SELL", "ticker": symbol, "quantity": "4", "price": "10"}
        refused = await post(portfolio, "/api/v1/portfolio/transactions", sell, via_a)
        assert refused.status_code == 409
        sell["quantity"] = "3"
        assert (
            await post(portfolio, "/api/v1/portfolio/transactions", sell, via_a)
        ).status_code == 201
        seen_by_b = (await other.client.get("/api/v1/portfolio", headers=via_b)).json()
        assert seen_by_b["cash"] == "150.0000" and seen_by_b["positions"] == []
