"""Typed FastAPI dependencies common to every part."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.auth import require_role
from shared.jwt import Claims
from shared.runtime import Resources


# ``async def``: FastAPI runs plain ``def`` dependencies in its thread pool, a thread hop
# on every request for what is an attribute lookup.
async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_pool(request: Request) -> asyncpg.Pool:
    resources: Resources = request.app.state.resources
    return resources.pool


DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]
Viewer = Annotated[Claims, Depends(require_role("viewer"))]
Analyst = Annotated[Claims, Depends(require_role("analyst"))]
Admin = Annotated[Claims, Depends(require_role("admin"))]
