"""Input the database could never store, refused by every part: the class, not an example.

Each part runs in process on the real PostgreSQL/Redis/NATS (``tests.inprocess``). The
tests walk the part's own OpenAPI document, so a route or parameter added later is tried
too: every text parameter and JSON or form field with a NUL or a lone surrogate, every
number with ``nan``/``inf``/an overflowing literal, each must be a 422 in the envelope that
names the field -- never a 500, never accepted. Then the examples that were 500s before,
end to end against the database.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bourse.parts import GATEWAY, PARTS
from gateway.identity import service as identity
from shared.db import open_connection
from shared.pagination import CursorCodec, CursorKey, CursorPosition
from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

PASSWORD = "correct horse battery"
# Background work that the input checks do not need (and a busy machine does not want).
_QUIET: dict[str, dict[str, Any]] = {"market": {"universe_autoload": False, "feed_mode": "off"}}
_NUMBER_TEXTS = ("nan", "NaN", "inf", "-Infinity", "1e999")


async def admin_headers(name: str, part: InProcessApp, infra: TestInfra) -> dict[str, str]:
    """An admin's credentials for ``part``: signed by the test's key for a service; for
    the gateway, a real admin user logged in through it."""
    if name != GATEWAY.name:
        return part.token("admin")
    username = f"adm{uuid.uuid4().hex[:10]}"
    conn = await open_connection(infra.dsn_for(GATEWAY))
    try:
        await identity.create_user(conn, username, PASSWORD, "admin")
    finally:
        await conn.close()
    answer = await part.client.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module", params=[p.name for p in PARTS])
async def part(
    request: pytest.FixtureRequest, infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[InProcessApp, dict[str, str]]]:
    name: str = request.param
    async with running_app(
        name, infra, tmp_path_factory.mktemp(name), **_QUIET.get(name, {})
    ) as running:
        yield running, await admin_headers(name, running, infra)


# --- walking a part's OpenAPI document --------------------------------------------------


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for step in schema["$ref"].lstrip("#/").split("/"):
            target = target[step]
        schema = target
    return schema


def _types(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema admits (through anyOf/oneOf and references)."""
    schema = _resolve(document, schema)
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(document, branch)
    if "enum" in schema or "const" in schema:
        found.add("string")  # enums are text on the wire
    return found


def _fill(document: dict[str, Any], schema: dict[str, Any]) -> str:
    """A well-formed value for a path parameter that is not under test."""
    schema = _resolve(document, schema)
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if "integer" in _types(document, schema):
        return "1"
    return "AAPL"


class Operation:
    def __init__(self, document: dict[str, Any], path: str, method: str, spec: dict[str, Any]):
        self.document, self.path, self.method, self.spec = document, path, method, spec
        self.parameters = [_resolve(document, p) for p in spec.get("parameters", [])]

    def __repr__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def url(self, path_values: dict[str, str] | None = None) -> str:
        values = path_values or {}
        url = self.path
        for p in self.parameters:
            if p["in"] == "path":
                value = values.get(p["name"]) or _fill(self.document, p.get("schema", {}))
                url = url.replace("{" + p["name"] + "}", value)
        return url

    def params_of(self, location: str, json_type: str) -> list[str]:
        return [
            p["name"]
            for p in self.parameters
            if p["in"] == location and json_type in _types(self.document, p.get("schema", {}))
        ]

    def answers_pages(self) -> bool:
        content = self.spec.get("responses", {}).get("200", {}).get("content", {})
        schema = _resolve(self.document, content.get("application/json", {}).get("schema", {}))
        return "next_cursor" in schema.get("properties", {})

    def text_bodies(self) -> list[str]:
        """Media types of a body taken as raw text (not JSON, not a form)."""
        content = self.spec.get("requestBody", {}).get("content", {})
        return [media for media in content if not media.endswith("json") and "form" not in media]

    def body_fields(self, media: str, json_type: str) -> list[str]:
        content = self.spec.get("requestBody", {}).get("content", {})
        if media not in content:
            return []
        schema = _resolve(self.document, content[media].get("schema", {}))
        return [
            name
            for name, prop in schema.get("properties", {}).items()
            if json_type in _types(self.document, prop)
        ]


def operations(app: Any) -> Iterator[Operation]:
    document = app.openapi()
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield Operation(document, path, method, spec)


def _names_field(answer: httpx.Response, loc: list[str], kind: str) -> bool:
    if answer.status_code != 422:
        return False
    body = answer.json()
    if set(body) != {"error_code", "message", "details", "timestamp", "request_id"}:
        return False
    return any(e["loc"] == loc and e["type"] == kind for e in body["details"].get("errors", []))


# --- the class, walked -----------------------------------------------------------------


async def test_every_text_parameter_refuses_nul(
    part: tuple[InProcessApp, dict[str, str]],
) -> None:
    running, headers = part
    failures: list[tuple[Any, ...]] = []
    for op in operations(running.app):
        for name in op.params_of("query", "string"):
            answer = await running.client.request(
                op.method, f"{op.url()}?{name}=%00x", headers=headers
            )
            if not _names_field(answer, ["query", name], "unstorable_text"):
                failures.append((op, name, answer.status_code, answer.text[:200]))
        for name in op.params_of("path", "string"):
            answer = await running.client.request(
                op.method, op.url({name: "A%00"}), headers=headers
            )
            if not _names_field(answer, ["path", name], "unstorable_text"):
                failures.append((op, name, answer.status_code, answer.text[:200]))
    assert failures == []


@pytest.mark.parametrize("bad", ["a\u0000b", "\ud800", "x\udfff"])
async def test_every_json_and_form_text_field_refuses_what_postgresql_cannot_store(
    part: tuple[InProcessApp, dict[str, str]], bad: str
) -> None:
    running, headers = part
    failures: list[tuple[Any, ...]] = []
    for op in operations(running.app):
        for name in op.body_fields("application/json", "string"):
            # json.dumps writes the surrogate as the escape a client would send.
            answer = await running.client.request(
                op.method,
                op.url(),
                content=json.dumps({name: bad}).encode(),
                headers={**headers, "Content-Type": "application/json"},
            )
            if not _names_field(answer, ["body", name], "unstorable_text"):
                failures.append((op, name, answer.status_code, answer.text[:200]))
        if "\x00" not in bad:
            continue  # form fields and text bodies are UTF-8 bytes: no surrogate gets through
        for media in op.text_bodies():
            answer = await running.client.request(
                op.method,
                op.url(),
                content=b"first line\n" + bad.encode(),
                headers={**headers, "Content-Type": media},
            )
            if not _names_field(answer, ["body"], "unstorable_text"):
                failures.append((op, media, answer.status_code, answer.text[:200]))
            elif "line 2" not in answer.text:
                failures.append((op, media, "no line", answer.text[:200]))
        for name in op.body_fields("application/x-www-form-urlencoded", "string"):
            answer = await running.client.request(
                op.method,
                op.url(),
                content=f"{name}={quote(bad)}".encode(),
                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            )
            if not _names_field(answer, ["body", name], "unstorable_text"):
                failures.append((op, name, answer.status_code, answer.text[:200]))
    assert failures == []


async def test_every_number_parameter_and_field_refuses_non_finite_values(
    part: tuple[InProcessApp, dict[str, str]],
) -> None:
    running, headers = part
    failures: list[tuple[Any, ...]] = []
    for op in operations(running.app):
        for json_type in ("number", "integer"):
            for name in op.params_of("query", json_type):
                for text in _NUMBER_TEXTS:
                    answer = await running.client.request(
                        op.method, f"{op.url()}?{name}={text}", headers=headers
                    )
                    if answer.status_code != 422:
                        failures.append((op, name, text, answer.status_code))
            for name in op.params_of("path", json_type):
                for text in _NUMBER_TEXTS:
                    answer = await running.client.request(
                        op.method, op.url({name: text}), headers=headers
                    )
                    if answer.status_code != 422:
                        failures.append((op, name, text, answer.status_code))
        for name in op.body_fields("application/json", "number"):
            for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
                answer = await running.client.request(
                    op.method,
                    op.url(),
                    content=f'{{"{name}": {literal}}}'.encode(),
                    headers={**headers, "Content-Type": "application/json"},
                )
                if not _names_field(answer, ["body", name], "finite_number"):
                    failures.append((op, name, literal, answer.status_code))
    assert failures == []


# --- the examples that were 500s, against the database ----------------------------------


@pytest.fixture
async def market(infra: TestInfra, tmp_path: Path) -> AsyncIterator[InProcessApp]:
    async with running_app("market", infra, tmp_path, **_QUIET["market"]) as running:
        yield running


async def test_a_nul_in_the_stock_search_is_a_422_naming_q(market: InProcessApp) -> None:
    answer = await market.client.get("/api/v1/stocks?q=%00", headers=market.token())
    assert _names_field(answer, ["query", "q"], "unstorable_text"), answer.text


async def test_non_finite_price_filters_are_refused_and_finite_ones_kept(
    market: InProcessApp,
) -> None:
    for text in ("NaN", "inf", "-inf", "1e999"):
        answer = await market.client.get(f"/api/v1/stocks?min_price={text}", headers=market.token())
        assert _names_field(answer, ["query", "min_price"], "finite_number"), answer.text
    answer = await market.client.get("/api/v1/stocks?min_price=1.5e2", headers=market.token())
    assert answer.status_code == 200, answer.text


async def test_an_empty_fields_list_is_a_422_that_says_what_to_do(market: InProcessApp) -> None:
    for raw in ("", ",", " , "):
        answer = await market.client.get(f"/api/v1/stocks?fields={raw}", headers=market.token())
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert "unknown" not in body["details"]
        assert body["details"]["field"] == "fields"
        assert "ticker" in body["details"]["fields"]
        assert "leave it out" in body["message"]


async def test_a_nul_in_an_imported_csv_is_a_422_naming_its_line(market: InProcessApp) -> None:
    csv = (
        b"<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        b"AAPL.US\x00,D,20240102,000000,1,2,0.5,1.5,100,0\n"
    )
    # As text/csv, and as curl's default form type: both reach the import as bytes.
    for media in ("text/csv", "application/x-www-form-urlencoded"):
        answer = await market.client.post(
            "/api/v1/market/imports",
            content=csv,
            headers={**market.token("admin"), "Content-Type": media},
        )
        assert _names_field(answer, ["body"], "unstorable_text"), answer.text
        assert "line 2" in answer.json()["details"]["errors"][0]["msg"]


async def test_a_nul_or_a_surrogate_in_a_portfolio_name_stores_nothing(
    infra: TestInfra, tmp_path: Path
) -> None:
    async with running_app("portfolio", infra, tmp_path) as portfolio:
        owner = str(uuid.uuid4())
        headers = {**portfolio.token(subject=owner), "Content-Type": "application/json"}
        for raw in (b'{"name": "a\\u0000"}', b'{"name": "\\udc00 lone"}'):
            answer = await portfolio.client.post("/api/v1/portfolio", content=raw, headers=headers)
            assert _names_field(answer, ["body", "name"], "unstorable_text"), answer.text
        # A valid pair is a character like any other.
        good = await portfolio.client.post(
            "/api/v1/portfolio", content=b'{"name": "\\ud83d\\ude00"}', headers=headers
        )
        assert good.status_code == 201, good.text
        listed = await portfolio.client.get("/api/v1/portfolios", headers=headers)
        assert [p["name"] for p in listed.json()["items"]] == ["\U0001f600"]


# --- cursors: one signed codec, every list ---------------------------------------------


class _OtherList(CursorPosition):
    before: int


def _unsigned(position: dict[str, Any]) -> str:
    """A cursor as the old codec made them (base64 JSON): the right shape, no tag."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()


# Forged positions of the shapes the lists used, with values of the wrong types.
_FORGED: list[dict[str, Any]] = [
    {"sort": "price", "value": "abc", "ticker": "AAPL"},
    {"sort": "ticker", "value": 5, "ticker": ["A"]},
    {"before": "x"},
    {"before": 1e300},
    {"username": 5},
    {"published_at": 5, "id": "not-a-uuid"},
]


def _is_invalid_cursor(answer: httpx.Response) -> bool:
    return answer.status_code == 422 and answer.json()["error_code"] == "INVALID_CURSOR"


async def _owned_ids(running: InProcessApp, headers: dict[str, str]) -> dict[str, str]:
    """Path values the caller owns, for lists under an owned resource (another user's
    id, or a made-up one, is a 404 there)."""
    if "/api/v1/portfolio" in running.app.openapi()["paths"]:
        default = await running.client.get("/api/v1/portfolio", headers=headers)
        return {"portfolio_id": str(default.json()["id"])}
    return {}


async def test_every_list_refuses_forged_and_foreign_cursors(
    part: tuple[InProcessApp, dict[str, str]],
) -> None:
    running, headers = part
    key: CursorKey = running.app.state.resources.cursor_key
    foreign = CursorCodec("some.other.list", _OtherList).encode(key, _OtherList(before=10))
    lists = [
        op
        for op in operations(running.app)
        if op.method == "get" and "cursor" in op.params_of("query", "string")
    ]
    failures: list[tuple[Any, ...]] = []
    owned = await _owned_ids(running, headers)
    for op in lists:
        for cursor in [*map(_unsigned, _FORGED), foreign, "x", "a.b", "é.é", foreign + "A"]:
            answer = await running.client.get(
                op.url(owned), params={"cursor": cursor}, headers=headers
            )
            if not _is_invalid_cursor(answer):
                failures.append((op, cursor, answer.status_code, answer.text[:200]))
        # The cursors the list makes itself still lead to the next page.
        first = await running.client.get(op.url(owned), params={"limit": 1}, headers=headers)
        assert first.status_code == 200, (op, first.text)
        if first.json()["next_cursor"]:
            second = await running.client.get(
                op.url(owned),
                params={"limit": 1, "cursor": first.json()["next_cursor"]},
                headers=headers,
            )
            assert second.status_code == 200, (op, second.text)
            # A page of items, or another kind of range (ledger verification: no items)
            page_one, page_two = first.json(), second.json()
            assert page_two.get("items", page_two) != page_one.get("items", page_one)
    assert failures == []
    # Every operation that answers a page (a next_cursor) is one of the lists tried here.
    pages = [op for op in operations(running.app) if op.answers_pages()]
    assert {repr(op) for op in pages} == {repr(op) for op in lists}


async def test_a_cursor_from_another_deployment_is_refused(
    infra: TestInfra, tmp_path: Path
) -> None:
    # Two gateways on the same data, one with the key kept in its schema and one with its
    # own configured key: each refuses the other's cursors.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_app("gateway", infra, tmp_path / "a") as first,
        running_app("gateway", infra, tmp_path / "b", cursor_key="k" * 40) as second,
    ):
        for gateway in (first, second):
            for _ in range(2):
                await admin_headers(GATEWAY.name, gateway, infra)  # two users at least
        first_admin = await admin_headers(GATEWAY.name, first, infra)
        second_admin = await admin_headers(GATEWAY.name, second, infra)
        page = await first.client.get("/api/v1/users?limit=1", headers=first_admin)
        cursor = page.json()["next_cursor"]
        assert cursor
        assert (
            await first.client.get(f"/api/v1/users?limit=1&cursor={cursor}", headers=first_admin)
        ).status_code == 200
        foreign = await second.client.get(
            f"/api/v1/users?limit=1&cursor={cursor}", headers=second_admin
        )
        assert _is_invalid_cursor(foreign), foreign.text
