"""Helpers of the portfolio route tests: made-up tickers, and requests as a client makes
them (with ``If-Match`` and ``Idempotency-Key``)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx

from tests.inprocess import InProcessApp

# What the ``market`` fixture's responders answer: latest prices and daily closes.
PRICES: dict[str, float] = {}
HISTORY: dict[str, list[tuple[date, float]]] = {}
SECTORS: dict[str, str] = {}  # the sector market sends with a ticker's quote, if any
INDEX: dict[date, float] = {}  # the total-return index's levels (tests use their own dates)


def ticker() -> str:
    """A ticker no other test uses (five letters)."""
    letters = uuid.uuid4().hex.upper().translate(str.maketrans("0123456789", "GHIJKLMNOP"))
    return letters[:5]


async def etag(app: InProcessApp, headers: dict[str, str], path: str = "/api/v1/portfolio") -> str:
    response = await app.client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


async def post(
    app: InProcessApp,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    if_match: str | None = "*",
    key: str | None = None,
) -> httpx.Response:
    extra = dict(headers)
    if if_match is not None:
        extra["If-Match"] = if_match
    if key is not None:
        extra["Idempotency-Key"] = key
    return await app.client.post(path, json=body, headers=extra)


async def deposit(app: InProcessApp, caller: dict[str, str], amount: str) -> None:
    response = await post(
        app, "/api/v1/portfolio/transactions", {"kind": "DEPOSIT", "amount": amount}, caller
    )
    assert response.status_code == 201, response.text


async def ledger_rows(
    app: InProcessApp, caller: dict[str, str], portfolio_id: str | None = None
) -> list[dict[str, Any]]:
    path = f"/api/v1/portfolios/{portfolio_id}" if portfolio_id else "/api/v1/portfolio"
    response = await app.client.get(f"{path}/transactions?limit=200", headers=caller)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
