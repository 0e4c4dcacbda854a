"""The storable-input check every part's app carries (no database: a small app of the
shared factory, called through httpx's ASGI transport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form, Request
from pydantic import BaseModel

from shared.http import create_service_app
from shared.inputs import FiniteFloat

router = APIRouter()


class Item(BaseModel):
    name: str
    tags: list[str] = []
    extra: dict[str, Any] = {}
    amount: float = 0


@router.get("/things/{name}")
async def read(name: str, q: str = "", low: FiniteFloat | None = None) -> dict[str, Any]:
    return {"name": name, "q": q, "low": low}


@router.post("/things")
async def create(item: Item) -> Item:
    return item


@router.post("/login")
async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> str:
    return username


@router.post("/import")
async def import_text(request: Request) -> int:
    return len(await request.body())


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(name="t", title="t", version="1", lifespan=lifespan, routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def refused(answer: httpx.Response) -> list[tuple[list[str], str]]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    return [(e["loc"], e["type"]) for e in body["details"]["errors"]]


def post_json(client: httpx.AsyncClient, raw: str) -> Any:
    return client.post("/things", content=raw, headers={"Content-Type": "application/json"})


async def test_a_nul_in_a_query_or_path_parameter_names_it(client: httpx.AsyncClient) -> None:
    assert refused(await client.get("/things/a?q=b%00")) == [(["query", "q"], "unstorable_text")]
    assert refused(await client.get("/things/a%00")) == [(["path", "name"], "unstorable_text")]
    # Not only declared parameters: anything a route might read.
    assert refused(await client.get("/things/a?other=%00")) == [
        (["query", "other"], "unstorable_text")
    ]
    assert (await client.get("/things/a?q=%2500")).json()["q"] == "%00"  # the text "%00"


async def test_json_strings_and_keys_at_any_depth_are_checked(client: httpx.AsyncClient) -> None:
    raw = json.dumps({"name": "ok", "tags": ["fine", "a\u0000"], "extra": {"k\ud800": 1}})
    assert refused(await post_json(client, raw)) == [
        (["body", "tags", "1"], "unstorable_text"),
        (["body", "extra", "k\\ud800"], "unstorable_text"),
    ]
    assert refused(await post_json(client, '{"name": "\\udfff"}')) == [
        (["body", "name"], "unstorable_text")
    ]
    # A surrogate pair is one character like any other; "\\u0000" written out is text.
    ok = await post_json(client, '{"name": "\\ud83d\\ude00 \\\\u0000"}')
    assert ok.status_code == 200 and ok.json()["name"] == "\U0001f600 \\u0000"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "9" * 400 + ".0"])
async def test_non_finite_json_numbers_are_refused_wherever_they_are(
    client: httpx.AsyncClient, literal: str
) -> None:
    raw = f'{{"name": "x", "amount": {literal}, "extra": {{"deep": [{literal}]}}}}'
    assert refused(await post_json(client, raw)) == [
        (["body", "amount"], "finite_number"),
        (["body", "extra", "deep", "0"], "finite_number"),
    ]


async def test_finite_float_parameters_refuse_nan_and_infinity(client: httpx.AsyncClient) -> None:
    for text in ("nan", "inf", "-Infinity", "1e999"):
        assert refused(await client.get(f"/things/a?low={text}")) == [
            (["query", "low"], "finite_number")
        ]
    assert (await client.get("/things/a?low=-1.5e3")).json()["low"] == -1500.0


async def test_form_fields_are_checked_urlencoded_and_multipart(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/login", data={"username": "a\u0000", "password": "p"})
    assert refused(answer) == [(["body", "username"], "unstorable_text")]
    answer = await client.post(
        "/login", files={"username": (None, "a\u0000"), "password": (None, "p")}
    )
    assert refused(answer) == [(["body", "username"], "unstorable_text")]
    assert (await client.post("/login", data={"username": "a", "password": "p"})).json() == "a"


async def test_any_other_body_is_text_and_a_nul_names_its_line(
    client: httpx.AsyncClient,
) -> None:
    csv = b"date,close\n2024-01-02,1.5\n2024-01-03,1\x006\n"
    for media in ("text/csv", "application/x-www-form-urlencoded", "application/octet-stream"):
        answer = await client.post("/import", content=csv, headers={"Content-Type": media})
        assert refused(answer) == [(["body"], "unstorable_text")], media
        assert "line 3" in answer.json()["details"]["errors"][0]["msg"]
    # Without a NUL the route gets its bytes, whatever the declared type.
    clean = csv.replace(b"\x00", b"")
    for media in ("text/csv", "application/x-www-form-urlencoded"):
        answer = await client.post("/import", content=clean, headers={"Content-Type": media})
        assert answer.json() == len(clean)


async def test_what_is_not_json_is_left_to_the_route(client: httpx.AsyncClient) -> None:
    answer = await post_json(client, '{"name": ')
    assert refused(answer) == [(["body", "9"], "json_invalid")]
    deep = "[" * 100_000 + "]" * 100_000
    answer = await client.post(
        "/import", content=deep, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200
