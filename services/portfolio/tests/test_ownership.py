"""Ownership: every route that takes a portfolio id (all of them, listed below) answers
404 for another user's portfolio -- never 403, never their data -- and changes nothing."""

from __future__ import annotations

from typing import Any

from services.portfolio.tests.support import deposit, ledger_rows, post, ticker
from tests.inprocess import InProcessApp


async def snapshot(app: InProcessApp, caller: dict[str, str], pid: str) -> Any:
    body = (await app.client.get(f"/api/v1/portfolios/{pid}", headers=caller)).json()
    return body, await ledger_rows(app, caller, pid)


async def test_every_id_route_answers_404_for_another_users_portfolio(
    portfolio: InProcessApp,
) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    symbol = ticker()
    await deposit(portfolio, alice, "100")
    bought = await post(
        portfolio,
        "/api/v1/portfolio/transactions",
        {"kind": "BUY", "ticker": symbol, "quantity": "1", "price": "10"},
        alice,
    )
    pid = bought.json()["portfolio"]["id"]
    tx = bought.json()["transaction"]["id"]
    before = await snapshot(portfolio, alice, pid)
    their_etag = f'"v{before[0]["version"]}"'
    bob_headers = {**bob, "If-Match": their_etag, "Idempotency-Key": "steal"}
    base = f"/api/v1/portfolios/{pid}"
    client = portfolio.client
    answers = {
        "GET portfolio": await client.get(base, headers=bob),
        "PATCH portfolio": await client.patch(base, json={"name": "mine"}, headers=bob_headers),
        "GET transactions": await client.get(f"{base}/transactions", headers=bob),
        "GET performance": await client.get(f"{base}/performance", headers=bob),
        "GET export": await client.get(f"{base}/transactions/export", headers=bob),
        "GET xray": await client.get(f"{base}/xray", headers=bob),
        "GET impact": await client.get(f"{base}/impact?ticker={symbol}", headers=bob),
        "POST import": await client.post(
            f"{base}/transactions/import",
            content=b"executed_at,kind,amount\n2025-01-02,WITHDRAWAL,100\n",
            headers={**bob_headers, "Content-Type": "text/csv", "Idempotency-Key": "steal-5"},
        ),
        "POST transactions": await client.post(
            f"{base}/transactions",
            json={"kind": "WITHDRAWAL", "amount": "100"},
            headers=bob_headers,
        ),
        "POST positions": await client.post(
            f"{base}/positions",
            json={"ticker": symbol, "quantity": "1", "price": "1"},
            headers={**bob_headers, "Idempotency-Key": "steal-2"},
        ),
        "PUT rebalance": await client.put(
            f"{base}/rebalance",
            json={"target": {"kind": "equal"}, "apply": True},
            headers={**bob_headers, "Idempotency-Key": "steal-4"},
        ),
        "POST reversal": await client.post(
            f"{base}/transactions/{tx}/reversal",
            json={},
            headers={**bob_headers, "Idempotency-Key": "steal-3"},
        ),
    }
    for route, response in answers.items():
        assert response.status_code == 404, (route, response.text)
        assert response.json()["error_code"] == "PORTFOLIO_NOT_FOUND", route
        assert symbol not in response.text and "100.0000" not in response.text, route
    assert await snapshot(portfolio, alice, pid) == before


async def test_another_users_transaction_is_not_found_in_your_own_portfolio(
    portfolio: InProcessApp,
) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    await deposit(portfolio, alice, "100")
    await deposit(portfolio, bob, "100")
    alices_tx = (await ledger_rows(portfolio, alice))[0]["id"]
    bobs = (await portfolio.client.get("/api/v1/portfolio", headers=bob)).json()["id"]
    response = await post(
        portfolio, f"/api/v1/portfolios/{bobs}/transactions/{alices_tx}/reversal", {}, bob
    )
    assert response.status_code == 404
    assert response.json()["error_code"] == "TRANSACTION_NOT_FOUND"
    assert len(await ledger_rows(portfolio, alice)) == 1
    assert len(await ledger_rows(portfolio, bob)) == 1
