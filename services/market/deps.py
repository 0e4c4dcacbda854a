"""What the market service's routes need from a request: the pool, and the caller's role.

Hot routes do not use FastAPI dependencies for these: resolving a dependency tree costs
more than serving a cached body (measured: ~45% of a cached request's time), so they call
:func:`authorize` and :func:`pool_of` directly. Both raise and return exactly what the
shared dependencies (``shared.deps.Viewer`` ...) do.
"""

from __future__ import annotations

import asyncpg
from fastapi import Request

from shared.auth import current_claims, role_at_least
from shared.errors import PermissionDeniedError
from shared.jwt import Claims
from shared.runtime import Resources


async def authorize(request: Request, minimum: str) -> Claims:
    """The verified caller, if their role is ``minimum`` or above (401 / 403 otherwise)."""
    claims = await current_claims(request)
    if not role_at_least(claims, minimum):
        raise PermissionDeniedError(f"This requires the {minimum} role.")
    return claims


def pool_of(request: Request) -> asyncpg.Pool:
    resources: Resources = request.app.state.resources
    return resources.pool
