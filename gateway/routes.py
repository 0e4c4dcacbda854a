"""The gateway's own routes: authentication, keys, health; and the catch-all proxy."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from starlette.responses import Response

from gateway.edge import Edge, get_edge
from gateway.health import platform_health
from gateway.identity import service as identity
from gateway.proxy import forward
from shared.deps import DbPool
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1")
EdgeDep = Annotated[Edge, Depends(get_edge)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    tags=["auth"],
    responses=error_responses(401, 422),
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], pool: DbPool, edge: EdgeDep
) -> TokenResponse:
    """OAuth2 password flow: exchange a username and password for an access token."""
    user = await identity.authenticate(pool, form.username, form.password)
    token = edge.signer.issue(str(user.id), [user.role], extra={"username": user.username})
    return TokenResponse(access_token=token, expires_in=edge.signer.ttl_seconds)


@router.get("/auth/jwks", tags=["auth"])
async def jwks(edge: EdgeDep) -> Response:
    """The public keys that verify the gateway's tokens (JWKS, RFC 7517)."""
    return Response(
        edge.jwks_bytes,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/health", tags=["health"], responses={503: {"description": "Something is down"}})
async def health(request: Request, edge: EdgeDep) -> Response:
    """Every service and dependency: 200 when all are up, 503 naming what is not."""
    checks: dict[str, Any] = request.app.state.readiness_checks
    ok, report = await platform_health(edge.session, edge.routes.upstreams, checks)
    return Response(
        orjson.dumps(report), status_code=200 if ok else 503, media_type="application/json"
    )


proxy_router = APIRouter()


@proxy_router.api_route(
    "/api/v1/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
async def proxy(request: Request, edge: EdgeDep) -> Response:
    return await forward(edge.session, edge.routes.upstream_for(request.url.path), request)
