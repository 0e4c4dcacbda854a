"""HTTP routes of the recommendations service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.recommendations import service
from services.recommendations.domain import Action
from services.recommendations.schemas import RecommendationOut, RecommendationPage
from shared.deps import CursorKeyDep, DbConn, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["recommendations"])


@router.get(
    "/recommendations",
    response_model=RecommendationPage,
    responses=error_responses(401, 403, 422),
)
async def list_recommendations(
    conn: DbConn,
    _: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    action: Action | None = None,
    ticker: Annotated[str | None, Query(pattern=r"^[A-Z]{1,5}([.-][A-Z])?$")] = None,
) -> RecommendationPage:
    """Published recommendations, newest first, with their disclosures."""
    rows, next_cursor = await service.list_recommendations(
        conn, limit=limit, cursor=cursor, cursor_key=cursor_key, action=action, ticker=ticker
    )
    return RecommendationPage(
        items=[RecommendationOut.of(r) for r in rows], next_cursor=next_cursor
    )
