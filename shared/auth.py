"""Request authentication for services: the bearer token, verified with the gateway's
keys, becomes :class:`shared.jwt.Claims`; roles gate what a caller may do.

Roles are ordered: ``viewer`` < ``analyst`` < ``admin``; a role includes those below it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Literal, get_args

from fastapi import Depends, Request

from shared.errors import AuthenticationError, PermissionDeniedError
from shared.jwt import Claims, TokenVerifier

# The one list of roles, lowest first: API schemas validate against ``Role``, the CLI
# offers ``ROLES``, ranks follow their order.
Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


def roles_reach(roles: Iterable[str], minimum: str) -> bool:
    """Whether any of ``roles`` is ``minimum`` or above (unknown roles count for nothing)."""
    needed = _RANK[minimum]
    return any(_RANK.get(role, -1) >= needed for role in roles)


def role_at_least(claims: Claims, minimum: str) -> bool:
    """Whether any of the caller's roles is ``minimum`` or above."""
    return roles_reach(claims.roles, minimum)


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer`` header, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("A bearer token is required.")
    return token.strip()


async def current_claims(request: Request) -> Claims:
    """Verify the caller's access token with the app's ``token_verifier``."""
    verifier: TokenVerifier = request.app.state.token_verifier
    claims = await verifier.verify(bearer_token(request))
    request.state.claims = claims
    return claims


CurrentClaims = Annotated[Claims, Depends(current_claims)]


def require_role(minimum: str) -> Callable[[Claims], Awaitable[Claims]]:
    """A dependency that lets through callers with ``minimum`` role or above."""
    if minimum not in _RANK:
        raise ValueError(f"unknown role {minimum!r}")

    async def dependency(claims: CurrentClaims) -> Claims:
        if not role_at_least(claims, minimum):
            raise PermissionDeniedError(f"This requires the {minimum} role.")
        return claims

    return dependency
