"""One OpenAPI document for the whole platform, served at ``/api/v1/openapi.json``.

It is the gateway's own document plus every service's ``/openapi.json`` (their
``/api/v1`` paths and the schemas those use), with the security schemes the gateway
accepts and, on each operation, the least role of its rule in :mod:`gateway.policy`
(``x-required-role``) and its security requirement, and the answers any operation can
give (429; 503 with Retry-After; 400 for a body that cannot be read). A schema name two
documents define differently is prefixed with the service's name. A service that does not
answer is listed under ``x-unavailable-services`` and the document is rebuilt sooner.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import aiohttp
import orjson

from gateway.pipeline.forward import Upstream
from gateway.policy import NoRoute, Policy

_FRESH_SECONDS = 60.0
_RETRY_SECONDS = 5.0
_TIMEOUT = aiohttp.ClientTimeout(total=3.0)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")

SECURITY_SCHEMES: dict[str, Any] = {
    "OAuth2Password": {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}},
        "description": "Log in with a username and password for an access token.",
    },
    "BearerJWT": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from /api/v1/auth/token (EdDSA, short-lived).",
    },
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key from /api/v1/api-keys, for automated access.",
    },
}

_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_RATE_LIMITED = {
    "description": "Rate limited (see the RateLimit and Retry-After headers)",
    "content": _ENVELOPE,
}
# Answers every operation can give whatever its own document says: a body that cannot be
# read at all (not UTF-8, not the declared format) is refused before validation; a
# dependency that is down (database, Redis, NATS, the service itself) is a 503 naming it.
_MALFORMED_BODY = {
    "description": "The body could not be read (not UTF-8, or not the declared format)",
    "content": _ENVELOPE,
}
_UNAVAILABLE = {
    "description": "A dependency is unavailable; details.dependency names it"
    " (postgres, redis, nats, or a service). Retry after Retry-After seconds.",
    "headers": _RETRY_AFTER,
    "content": _ENVELOPE,
}


async def _fetch(upstream: Upstream) -> dict[str, Any] | None:
    assert upstream.session is not None
    try:
        async with upstream.session.get(
            upstream.base_url + "/openapi.json", timeout=_TIMEOUT
        ) as response:
            if response.status != 200:
                return None
            document: dict[str, Any] = orjson.loads(await response.read())
            return document
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return None


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in renames:
                return {**node, "$ref": "#/components/schemas/" + renames[name]}
        return {key: _rename_refs(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def merge(
    own: dict[str, Any], services: dict[str, dict[str, Any] | None], policy: Policy
) -> dict[str, Any]:
    """The platform document (pure: the inputs are already fetched)."""
    merged = copy.deepcopy(own)
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components = merged.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    unavailable = []
    for service, document in services.items():
        if document is None:
            unavailable.append(service)
            continue
        theirs = document.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service.capitalize()}{name}"
            for name, schema in theirs.items()
            if name in schemas and schemas[name] != schema
        }
        for name, schema in theirs.items():
            schemas[renames.get(name, name)] = _rename_refs(schema, renames)
        for path, item in document.get("paths", {}).items():
            if path.startswith("/api/v1/"):
                paths[path] = _rename_refs(item, renames)
    for path, item in paths.items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            try:
                rule = policy.match(method.upper(), path)
            except NoRoute:
                operation["x-required-role"] = "none: no rule, the gateway refuses it"
                continue
            operation["x-required-role"] = rule.access
            operation["x-rate-limit-class"] = rule.rate_class
            if rule.access == "public":
                operation["security"] = []
            else:
                schemes: list[dict[str, list[str]]] = [{"OAuth2Password": []}, {"BearerJWT": []}]
                if rule.api_keys:
                    schemes.append({"ApiKey": []})
                operation["security"] = schemes
            responses = operation.setdefault("responses", {})
            responses.setdefault("429", _RATE_LIMITED)
            responses.setdefault("503", _UNAVAILABLE)
            if "requestBody" in operation:
                responses.setdefault("400", _MALFORMED_BODY)
    components["securitySchemes"] = SECURITY_SCHEMES
    merged["info"] = {
        "title": "Bourse API",
        "version": own.get("info", {}).get("version", "0.1.0"),
        "description": "The whole platform through its gateway. Errors always use the"
        " ErrorEnvelope shape; every /api/v1 answer carries RateLimit-Policy and RateLimit.",
    }
    merged["x-unavailable-services"] = unavailable
    return merged


async def platform_openapi(
    own: dict[str, Any], upstreams: list[Upstream], policy: Policy, cache: dict[str, Any]
) -> bytes:
    """The merged document as JSON, rebuilt at most every minute (sooner while a
    service is missing from it)."""
    now = time.monotonic()
    if cache.get("expires", 0.0) > now:
        body: bytes = cache["body"]
        return body
    fetched = await asyncio.gather(*(_fetch(u) for u in upstreams))
    services = {u.name: doc for u, doc in zip(upstreams, fetched, strict=True)}
    document = merge(own, services, policy)
    body = orjson.dumps(document)
    complete = not document["x-unavailable-services"]
    cache.update(body=body, expires=now + (_FRESH_SECONDS if complete else _RETRY_SECONDS))
    return body
