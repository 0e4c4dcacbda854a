"""The route table covers every route the platform publishes, and the merged OpenAPI
document describes them all.

A service that adds a route without adding its rule to ``gateway/policy.py`` fails here
(and the gateway would refuse the route with 404 until it has one).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.policy import RULES, NoRoute, Policy
from tests.platform import Platform

pytestmark = pytest.mark.e2e

SERVICES = ("market", "recommendations", "portfolio", "realtime")
METHODS = ("get", "post", "put", "patch", "delete")


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in document.get("paths", {}).items()
        if path.startswith("/api/v1/")
        for method in METHODS
        if method in item
    ]


async def test_every_service_route_has_a_rule_naming_that_service(platform: Platform) -> None:
    policy = Policy()
    missing = []
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            document = (await client.get(platform.processes[service].url + "/openapi.json")).json()
            routes = operations(document)
            assert routes, f"{service} publishes no /api/v1 route"
            for method, path in routes:
                try:
                    rule = policy.match(method, path)
                except NoRoute:
                    missing.append(f"{service}: {method} {path}")
                    continue
                if rule.upstream != service:
                    missing.append(f"{service}: {method} {path} is routed to {rule.upstream}")
    assert missing == [], "add these routes to gateway/policy.py:RULES"


async def test_every_service_rule_has_a_route_behind_it(platform: Platform) -> None:
    # A rule without a route is a path the gateway admits, authenticates and charges,
    # only for the service to answer 404 or 405: the table and the services agree both ways.
    published: set[tuple[str, str, str]] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            document = (await client.get(platform.processes[service].url + "/openapi.json")).json()
            published |= {(service, method, path) for method, path in operations(document)}
    stale = [
        f"{rule.upstream}: {rule.method} {rule.path}"
        for rule in RULES
        if rule.upstream is not None
        and not rule.websocket
        and (rule.upstream, rule.method, rule.path) not in published
    ]
    assert stale == [], "these rules of gateway/policy.py:RULES have no route"


async def test_the_merged_document_has_every_route_and_its_security(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["x-unavailable-services"] == []
    assert set(document["components"]["securitySchemes"]) == {
        "OAuth2Password",
        "BearerJWT",
        "ApiKey",
    }
    published = set(operations(document))
    policy = Policy()
    for method, path in published:
        operation = document["paths"][path][method.lower()]
        rule = policy.match(method, path)
        assert operation["x-required-role"] == rule.access
        assert ("security" in operation and operation["security"] == []) == (
            rule.access == "public"
        )
        assert "429" in operation["responses"]
    # Every service contributes, and the gateway's own routes are there.
    for expected in [
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/stocks"),
        ("GET", "/api/v1/recommendations"),
        ("POST", "/api/v1/portfolio"),
        ("GET", "/api/v1/alerts"),
    ]:
        assert expected in published
    # Every $ref resolves.
    text = response.text
    schemas = document["components"]["schemas"]
    marker = '"$ref":"#/components/schemas/'
    for ref in {part.split('"')[0] for part in text.split(marker)[1:]}:
        assert ref in schemas, ref
    docs = await gateway.get("/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
