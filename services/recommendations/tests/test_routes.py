"""Recommendation routes, run in process on the real PostgreSQL, Redis and NATS
(identity stands in through the test's signing key)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app


@pytest.fixture(scope="module")
async def recommendations(
    infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app("recommendations", infra, tmp_path_factory.mktemp("rec")) as app:
        yield app


# --- GET /recommendations --------------------------------------------------------------


async def test_the_list_answers_a_page(recommendations: InProcessApp) -> None:
    response = await recommendations.client.get(
        "/api/v1/recommendations", params={"limit": 5}, headers=recommendations.token()
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items", "next_cursor"}


async def test_a_forged_cursor_is_refused(recommendations: InProcessApp) -> None:
    response = await recommendations.client.get(
        "/api/v1/recommendations",
        params={"cursor": "bm90LWEtY3Vyc29y"},
        headers=recommendations.token(),
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "INVALID_CURSOR"


async def test_a_lowercase_ticker_filter_is_refused(recommendations: InProcessApp) -> None:
    response = await recommendations.client.get(
        "/api/v1/recommendations", params={"ticker": "aapl"}, headers=recommendations.token()
    )
    assert response.status_code == 422
