"""Typed FastAPI dependencies common to every part.

``DbConn`` is the request's one database connection, in the transaction the request owns
(:mod:`shared.db.transaction`): committed when the route returns, before the response is
sent; rolled back when it raises. ``DbTransaction`` is the same unit of work, for a route
that also registers after-commit work. Routes never take the pool. ``CursorKeyDep``
signs and checks a list's cursors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.auth import require_role
from shared.db.transaction import RequestTransaction, request_transaction
from shared.jwt import Claims
from shared.pagination import CursorKey
from shared.runtime import Resources


# ``async def``: FastAPI runs plain ``def`` dependencies in its thread pool, a thread hop
# on every request for what is an attribute lookup.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def _request_transaction(request: Request) -> AsyncIterator[RequestTransaction]:
    resources: Resources = request.app.state.resources
    async with request_transaction(
        resources.pool, acquire_timeout=resources.db_acquire_timeout
    ) as unit:
        yield unit


# scope="function": the transaction ends when the route returns, before the response is
# sent (FastAPI's default scope would commit after the client has its answer).
DbTransaction = Annotated[RequestTransaction, Depends(_request_transaction, scope="function")]


async def _request_connection(unit: DbTransaction) -> asyncpg.Connection:
    return await unit.connection()


DbConn = Annotated[asyncpg.Connection, Depends(_request_connection)]


async def _cursor_key(request: Request) -> CursorKey:
    resources: Resources = request.app.state.resources
    return resources.cursor_key


# The key that signs and checks the part's pagination cursors (shared.pagination).
CursorKeyDep = Annotated[CursorKey, Depends(_cursor_key)]
Viewer = Annotated[Claims, Depends(require_role("viewer"))]
Analyst = Annotated[Claims, Depends(require_role("analyst"))]
Admin = Annotated[Claims, Depends(require_role("admin"))]
