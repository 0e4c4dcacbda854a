"""The gateway's platform routes: keys, health and the merged OpenAPI document.
(Identity routes are in :mod:`gateway.identity.routes`; services' routes are forwarded
by :mod:`gateway.pipeline.full_stack`; the console and the docs' UI are
:mod:`gateway.webpages`.)"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import EdgeDep
from gateway.health import platform_health
from gateway.openapi import platform_openapi

router = APIRouter(prefix="/api/v1")
outside_router = APIRouter(include_in_schema=False)


_JWKS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kty", "kid"],
                "properties": {
                    "kty": {"type": "string"},
                    "crv": {"type": "string"},
                    "x": {"type": "string"},
                    "kid": {"type": "string"},
                    "alg": {"type": "string"},
                    "use": {"type": "string"},
                },
            },
        }
    },
}


@router.get(
    "/auth/jwks",
    tags=["auth"],
    response_class=Response,
    responses={
        200: {
            "description": "The JSON Web Key Set (RFC 7517), as application/jwk-set+json",
            "content": {"application/jwk-set+json": {"schema": _JWKS_SCHEMA}},
        }
    },
)
async def jwks(edge: EdgeDep) -> Response:
    """The public keys that verify the gateway's tokens (JWKS, RFC 7517): the signing
    key and, during a rotation, the previous or next one."""
    return Response(
        edge.jwks_bytes,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@outside_router.get("/.well-known/jwks.json")
async def well_known_jwks(edge: EdgeDep) -> Response:
    return await jwks(edge)


@router.get("/health", tags=["health"], responses={503: {"description": "Something is down"}})
async def health(request: Request, edge: EdgeDep) -> Response:
    """Every service and dependency: 200 when all are up, 503 naming what is not."""
    checks: dict[str, Any] = request.app.state.readiness_checks
    ok, report = await platform_health(list(edge.upstreams.values()), checks, edge.limiter)
    return Response(
        orjson.dumps(report), status_code=200 if ok else 503, media_type="application/json"
    )


@router.get("/openapi.json", tags=["docs"])
async def openapi(request: Request, edge: EdgeDep) -> Response:
    """The whole platform's OpenAPI document (the gateway's routes and every service's)."""
    body = await platform_openapi(
        request.app.openapi(), list(edge.upstreams.values()), edge.policy, edge.openapi_cache
    )
    return Response(body, media_type="application/json")
