"""Typed dependencies of the gateway's own routes.

The edge middleware has already authenticated, rate-limited and authorized the request
by the route table; these read its result (and re-check the role, so a route cannot be
reached without one even if the table were wrong).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.authn import Principal
from gateway.edge import Edge, get_edge
from shared.auth import roles_reach
from shared.deps import DbConn, DbTransaction
from shared.errors import AuthenticationError, PermissionDeniedError

__all__ = ["DbConn", "DbTransaction"]  # the request's one connection and its transaction

EdgeDep = Annotated[Edge, Depends(get_edge)]


def current_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("A bearer token or an API key is required.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def admin_principal(principal: CurrentPrincipal) -> Principal:
    if not roles_reach(principal.roles, "admin"):
        raise PermissionDeniedError("This requires the admin role.")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


def client_ip(request: Request) -> str:
    address: str | None = getattr(request.state, "client_ip", None)
    return address or "unknown"


ClientIp = Annotated[str, Depends(client_ip)]
