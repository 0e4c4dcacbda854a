"""The common app's routing: literal segments beat parameters, a wrong method is a 405
listing every method of the path, HEAD is served wherever GET is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from shared.http import create_service_app

router = APIRouter()


@router.get("/alerts")
async def list_rules() -> dict[str, str]:
    return {"route": "list"}


@router.post("/alerts", status_code=201)
async def create_rule() -> dict[str, str]:
    return {"route": "create"}


@router.get("/alerts/history")
async def history() -> dict[str, str]:
    return {"route": "history"}


@router.get("/alerts/{rule_id}")
async def get_rule(rule_id: uuid.UUID) -> dict[str, str]:
    return {"route": "get", "id": str(rule_id)}


@router.patch("/alerts/{rule_id}")
async def update_rule(rule_id: uuid.UUID) -> dict[str, str]:
    return {"route": "update", "id": str(rule_id)}


@router.delete("/alerts/{rule_id}")
async def delete_rule(rule_id: uuid.UUID) -> dict[str, str]:
    return {"route": "delete", "id": str(rule_id)}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        name="test", title="t", version="0", lifespan=lifespan, routers=[router]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "PUT", "POST"])
async def test_a_literal_path_is_never_taken_for_a_parameter(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/alerts/history")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["error_code"] == "METHOD_NOT_ALLOWED"


async def test_each_route_still_answers_its_methods(client: httpx.AsyncClient) -> None:
    rule = str(uuid.uuid4())
    assert (await client.get("/alerts/history")).json() == {"route": "history"}
    assert (await client.get(f"/alerts/{rule}")).json() == {"route": "get", "id": rule}
    assert (await client.patch(f"/alerts/{rule}")).json()["route"] == "update"
    assert (await client.delete(f"/alerts/{rule}")).json()["route"] == "delete"
    assert (await client.post("/alerts")).status_code == 201
    assert (await client.get("/alerts/not-a-uuid")).status_code == 422


async def test_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    listing = await client.put("/alerts")
    assert listing.status_code == 405
    assert listing.headers["allow"] == "GET, HEAD, POST"
    one = await client.post(f"/alerts/{uuid.uuid4()}")
    assert one.status_code == 405
    assert one.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_head_is_served_where_get_is(client: httpx.AsyncClient) -> None:
    for path in ("/alerts", "/alerts/history", f"/alerts/{uuid.uuid4()}", "/live"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert int(response.headers["content-length"]) > 0


async def test_unknown_paths_are_still_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"
