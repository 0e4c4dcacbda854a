"""Market routes run in process on the real PostgreSQL, Redis and NATS (identity stands in
through the test's signing key), on a database of this module's own (imports move the
market's derived data, which other tests read): each test makes its own securities.
Grouped per route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import UnionType
from typing import Any, get_args

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from bourse.parts import MARKET
from services.market import schemas
from services.market.tests.factories import new_security
from shared.db import (
    open_connection,
)
from tests.infra import TestInfra, own_infra
from tests.inprocess import InProcessApp, running_app

CSV = (
    "Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,11,10,10.8,120\n"
)


@pytest.fixture(scope="module")
async def routes_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "mroutes", [MARKET]) as own:
        yield own


@pytest.fixture(scope="module")
async def market(
    routes_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    async with running_app(
        "market",
        routes_infra,
        tmp_path_factory.mktemp("mk"),
        universe_autoload=False,
        feed_mode="off",
    ) as app:
        yield app


async def new_tickers(infra: TestInfra, count: int) -> list[str]:
    conn = await open_connection(infra.dsn_for(MARKET))
    try:
        return [(await new_security(conn))[0] for _ in range(count)]
    finally:
        await conn.close()


# --- POST /market/imports --------------------------------------------------------------


async def test_an_import_reports_and_a_second_changes_nothing(
    market: InProcessApp, routes_infra: TestInfra
) -> None:
    (ticker,) = await new_tickers(routes_infra, 1)
    headers = {**market.token("admin"), "Content-Type": "text/csv"}
    url = "/api/v1/market/imports"
    first = await market.client.post(url, params={"ticker": ticker}, content=CSV, headers=headers)
    again = await market.client.post(url, params={"ticker": ticker}, content=CSV, headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["inserted"], again.json()["inserted"], again.json()["unchanged"]) == (
        2,
        0,
        2,
    )
    prices = await market.client.get(
        f"/api/v1/stocks/{ticker}/prices",
        params={"start": "2024-01-01", "end": "2024-01-31"},
        headers=market.token(),
    )
    assert [b["close"] for b in prices.json()["bars"]] == [10.5, 10.8]


async def test_a_burst_of_imports_beyond_the_pool_all_complete(
    market: InProcessApp, routes_infra: TestInfra
) -> None:
    burst = 5 * market.settings.db_pool_max
    tickers = await new_tickers(routes_infra, burst)
    headers = {**market.token("admin"), "Content-Type": "text/csv"}
    async with asyncio.timeout(180):
        answers = await asyncio.gather(
            *(
                market.client.post(
                    "/api/v1/market/imports", params={"ticker": t}, content=CSV, headers=headers
                )
                for t in tickers
            )
        )
    assert [a.status_code for a in answers] == [200] * burst, {
        a.status_code: a.text for a in answers if a.status_code != 200
    }
    assert {a.json()["inserted"] for a in answers} == {2}


async def test_imports_need_the_admin_role(market: InProcessApp) -> None:
    answer = await market.client.post(
        "/api/v1/market/imports",
        content=CSV,
        headers={**market.token("analyst"), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 403


# --- GET /stocks/{ticker} --------------------------------------------------------------


async def test_an_unknown_ticker_is_not_found(market: InProcessApp) -> None:
    answer = await market.client.get("/api/v1/stocks/ZZZZY", headers=market.token())
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "STOCK_NOT_FOUND"


# --- every body against its declared model ----------------------------------------------


@pytest.fixture(scope="module")
async def loaded_market(
    infra: TestInfra, market_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    """The app on the market tests' loaded universe (read only here)."""
    async with running_app(
        "market",
        infra,
        tmp_path_factory.mktemp("mkl"),
        database=f"{infra.database}_market",
        universe_autoload=False,
        feed_mode="off",
    ) as app:
        yield app


def shape(value: Any) -> Any:
    """The field names of ``value`` at every depth, without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return None


def get_routes(app: InProcessApp) -> dict[str, tuple[type[BaseModel], ...]]:
    """Every GET route's path and its declared response models (several when the route
    declares a union: a query parameter chooses the shape)."""
    found = {}
    for context in iter_route_contexts(app.app.router.routes):
        route = context.original_route
        if (
            isinstance(route, APIRoute)
            and "GET" in (context.methods or ())
            and (context.path or "").startswith("/api/v1/")
        ):
            declared = route.response_model
            models = get_args(declared) if isinstance(declared, UnionType) else (declared,)
            for model in models:
                assert isinstance(model, type) and issubclass(model, BaseModel), context.path
            assert context.path is not None
            found[context.path] = models
    return found


async def test_every_pre_encoded_body_matches_its_declared_model(
    loaded_market: InProcessApp,
) -> None:
    # The hot reads are encoded once and cached as bytes (services/market/encoders.py),
    # so FastAPI never checks them: every GET route's body is validated here, strictly
    # (no field the model lacks, none it needs missing), on every shape a route can send.
    app, headers = loaded_market, loaded_market.token()
    ticker = (await app.client.get("/api/v1/stocks", params={"limit": 1}, headers=headers)).json()[
        "items"
    ][0]["ticker"]
    # Each call names the model its body must be: the route's declared one, or for a
    # route that declares a union, the member its parameters choose.
    calls: list[tuple[str, dict[str, str], type[BaseModel] | None]] = [
        ("/api/v1/stocks", {"limit": "3"}, None),
        (
            "/api/v1/stocks",
            {"limit": "3", "fields": "name,last_price", "sort": "-market_cap"},
            None,
        ),
        ("/api/v1/stocks/{ticker}", {}, None),
        ("/api/v1/stocks/{ticker}/prices", {}, None),
        ("/api/v1/stocks/{ticker}/prices", {"interval": "weekly", "adjusted": "false"}, None),
        ("/api/v1/stocks/{ticker}/prices", {"interval": "monthly"}, None),
        # A range this long is streamed in pieces: the joined body must still be the model.
        ("/api/v1/stocks/{ticker}/prices", {"start": "1990-01-01"}, None),
        ("/api/v1/stocks/{ticker}/analysis", {}, schemas.Analysis),
        # Nothing feeds the model's view here: its section is null, with the reason (the
        # section filled is checked the same way in test_model_view.py).
        ("/api/v1/stocks/{ticker}/analysis", {"include_ml": "true"}, schemas.AnalysisWithModel),
        ("/api/v1/market/overview", {}, None),
        ("/api/v1/market/sectors", {}, None),
        ("/api/v1/market/index", {}, None),
        ("/api/v1/market/quotes", {}, None),
        ("/api/v1/market/status", {}, None),
    ]
    declared = get_routes(app)
    assert {path for path, _, _ in calls} == {p for p in declared if p.startswith("/api/v1/")}
    for path, models in declared.items():
        # Every member of a union is some call's model.
        chosen = {m for p, _, m in calls if p == path}
        assert chosen == ({None} if len(models) == 1 else set(models)), path
    for template, params, member in calls:
        model = member or declared[template][0]
        assert model in declared[template], template
        answer = await app.client.get(
            template.format(ticker=ticker), params=params, headers=headers
        )
        assert answer.status_code == 200, (template, params, answer.text)
        body = answer.json()
        if "fields" in params:
            # A sparse page names only the chosen fields: each item is a subset.
            model.model_validate({**body, "items": []})
            wanted = {"ticker", *params["fields"].split(",")}
            assert all(set(item) == wanted for item in body["items"]), body["items"]
            continue
        # Exactly what the model describes: valid, and no field it lacks, none it has
        # missing, at any depth (validated and dumped back, the body has the same shape).
        dumped = model.model_validate(body).model_dump(mode="json")
        assert shape(dumped) == shape(body), template
