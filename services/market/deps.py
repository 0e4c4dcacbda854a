"""What the market service's routes need from a request: its connection, and the
caller's role.

Hot routes do not use FastAPI dependencies for these: resolving a dependency tree costs
more than serving a cached body (measured: ~45% of a cached request's time), so they call
:func:`authorize` and :func:`request_connection` directly. They raise and give exactly
what the shared dependencies (``shared.deps.Viewer``, ``DbConn``) do: the connection is
the request's one, in the transaction the request owns (:mod:`shared.db.transaction`),
taken only when a cached answer must be built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import Request

from shared.auth import current_claims, role_at_least
from shared.db.transaction import RequestTransaction, request_transaction
from shared.errors import PermissionDeniedError
from shared.jwt import Claims
from shared.runtime import Resources


async def authorize(request: Request, minimum: str) -> Claims:
    """The verified caller, if their role is ``minimum`` or above (401 / 403 otherwise)."""
    claims = await current_claims(request)
    if not role_at_least(claims, minimum):
        raise PermissionDeniedError(f"This requires the {minimum} role.")
    return claims


@asynccontextmanager
async def request_unit(request: Request) -> AsyncIterator[RequestTransaction]:
    """The request's unit of work: committed when the block ends, rolled back if it raises."""
    resources: Resources = request.app.state.resources
    async with request_transaction(
        resources.pool, acquire_timeout=resources.db_acquire_timeout
    ) as unit:
        yield unit


@asynccontextmanager
async def request_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """The request's one connection, in its transaction (see :func:`request_unit`)."""
    async with request_unit(request) as unit:
        yield await unit.connection()
