"""Typed FastAPI dependencies common to every part."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.auth import require_role
from shared.jwt import Claims
from shared.runtime import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def get_pool(request: Request) -> asyncpg.Pool:
    return get_resources(request).pool


DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]
Viewer = Annotated[Claims, Depends(require_role("viewer"))]
Analyst = Annotated[Claims, Depends(require_role("analyst"))]
Admin = Annotated[Claims, Depends(require_role("admin"))]
