"""Every route of the route table x every kind of caller, through the running gateway.

The table is ``gateway.policy.RULES``: adding a route means adding a rule, and this test
then checks it for anonymous callers, each role, and a read-only viewer API key.
Denied: 401 (no credential) or 403 from the gateway. Allowed: anything but 401/403 (the
route may still answer 404 or 422 for the made-up ids and empty bodies used here).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from gateway.policy import RULES, Rule
from gateway.tests.e2e import admin_headers, new_user
from shared.auth import roles_reach
from tests.platform import Platform

pytestmark = pytest.mark.e2e

SAMPLE_PARAMS = {"ticker": "ACME"}


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    role: str | None  # None: anonymous
    read_only_key: bool = False

    def allowed(self, rule: Rule) -> bool:
        if rule.access == "public":
            return True
        if self.role is None or not roles_reach([self.role], rule.access):
            return False
        return not self.read_only_key or (rule.api_keys and rule.scope == "read")


def concrete(path: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE_PARAMS.get(m[1], str(uuid.uuid4())), path)


@pytest.fixture(scope="module")
async def callers(platform: Platform) -> list[Caller]:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as client:
        admin = await admin_headers(client)
        users = {
            role: await new_user(client, role, admin=admin)
            for role in ("viewer", "analyst", "admin")
        }
        key = await client.post(
            "/api/v1/api-keys",
            json={"name": "matrix", "scopes": ["read"]},
            headers=users["viewer"].headers,
        )
        assert key.status_code == 201, key.text
    return [
        Caller("anonymous", {}, None),
        *(Caller(role, user.headers, role) for role, user in users.items()),
        Caller("viewer read-only API key", {"X-API-Key": key.json()["key"]}, "viewer", True),
    ]


async def test_every_http_route_for_every_caller(
    gateway: httpx.AsyncClient, callers: list[Caller]
) -> None:
    wrong = []
    checked = 0
    for rule in (r for r in RULES if not r.websocket):
        for caller in callers:
            body: dict[str, Any] | None = {} if rule.method in ("POST", "PATCH", "PUT") else None
            response = await gateway.request(
                rule.method, concrete(rule.path), json=body, headers=caller.headers
            )
            checked += 1
            denied = response.status_code in (401, 403)
            if caller.allowed(rule) == denied:
                where = f"{rule.method} {rule.path} as {caller.name}"
                wrong.append(f"{where}: {response.status_code} {response.text[:120]}")
            elif denied:
                expected = 401 if caller.role is None else 403
                if response.status_code != expected:
                    where = f"{rule.method} {rule.path} as {caller.name}"
                    wrong.append(f"{where}: {response.status_code}, expected {expected}")
    assert wrong == []
    assert checked == len([r for r in RULES if not r.websocket]) * len(callers)


async def test_every_websocket_route_for_every_caller(
    platform: Platform, callers: list[Caller]
) -> None:
    base = platform.gateway_url.replace("http://", "ws://")
    wrong = []
    for rule in (r for r in RULES if r.websocket):
        for caller in callers:
            try:
                async with connect(base + concrete(rule.path), additional_headers=caller.headers):
                    denied = False
            except websockets.InvalidStatus as refused:
                body = orjson.loads(refused.response.body)
                # A refusal relayed from realtime itself (details.service) means the
                # gateway let the caller through.
                denied = "service" not in body["details"]
            if caller.allowed(rule) == denied:
                wrong.append(f"{rule.path} as {caller.name}: denied={denied}")
    assert wrong == []
