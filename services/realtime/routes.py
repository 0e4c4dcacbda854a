"""HTTP routes of the realtime service (alert rules; the WebSocket streams come later)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from services.realtime import service
from services.realtime.schemas import AlertRuleCreate, AlertRuleList, AlertRuleOut
from shared.deps import DbPool, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", response_model=AlertRuleList, responses=error_responses(401, 403))
async def list_rules(pool: DbPool, caller: Viewer) -> AlertRuleList:
    """The caller's own alert rules."""
    return AlertRuleList(
        items=[AlertRuleOut.of(r) for r in await service.list_rules(pool, caller.subject)]
    )


@router.post(
    "/alerts",
    response_model=AlertRuleOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422),
)
async def create_rule(pool: DbPool, caller: Viewer, body: AlertRuleCreate) -> AlertRuleOut:
    """Create an alert rule for the caller."""
    return AlertRuleOut.of(await service.create_rule(pool, caller.subject, body))


@router.delete(
    "/alerts/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
)
async def delete_rule(pool: DbPool, caller: Viewer, rule_id: UUID) -> Response:
    """Delete one of the caller's alert rules."""
    await service.delete_rule(pool, caller.subject, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
