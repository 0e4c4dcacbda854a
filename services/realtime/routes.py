"""HTTP routes of the realtime service: alert rules and alert history (the WebSocket
streams are in ``streams.routes``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from services.realtime import service
from services.realtime.domain import AlertRule
from services.realtime.schemas import (
    AlertOut,
    AlertPage,
    AlertRuleCreate,
    AlertRuleList,
    AlertRuleOut,
    AlertRuleUpdate,
)
from services.realtime.service import RuleChanged
from shared.deps import CursorKeyDep, DbConn, DbTransaction, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _rule_changed(request: Request, unit: DbTransaction) -> RuleChanged:
    """Tell every node about a rule change once the request's transaction has committed
    (and never if it rolls back)."""
    notify: RuleChanged = request.app.state.realtime.evaluator.notify_changed

    async def after_commit(rule: AlertRule | None, rule_id: UUID, owner_id: str) -> None:
        unit.after_commit(lambda: notify(rule, rule_id, owner_id))

    return after_commit


Changed = Annotated[RuleChanged, Depends(_rule_changed)]


async def _out(conn: DbConn, rule: AlertRule) -> AlertRuleOut:
    """The rule as answered (a watchlist rule with the tickers it covers now)."""
    tickers = await service.covered(conn, [rule])
    return AlertRuleOut.of(rule, tickers.get(rule.watchlist_id) if rule.watchlist_id else None)


@router.get("/alerts", response_model=AlertRuleList, responses=error_responses(401, 403))
async def list_rules(conn: DbConn, caller: Viewer) -> AlertRuleList:
    """The caller's own alert rules."""
    rules = await service.list_rules(conn, caller.subject)
    tickers = await service.covered(conn, rules)
    return AlertRuleList(
        items=[
            AlertRuleOut.of(r, tickers.get(r.watchlist_id) if r.watchlist_id else None)
            for r in rules
        ]
    )


@router.post(
    "/alerts",
    response_model=AlertRuleOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_rule(
    conn: DbConn, caller: Viewer, body: AlertRuleCreate, changed: Changed
) -> AlertRuleOut:
    """Create an alert rule for the caller, on a ticker or on each ticker of one of their
    watchlists."""
    return await _out(conn, await service.create_rule(conn, caller.subject, body, changed))


@router.get("/alerts/history", response_model=AlertPage, responses=error_responses(401, 403, 422))
async def alert_history(
    conn: DbConn,
    caller: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage:
    """The alerts fired for the caller, newest first (cursor-paginated)."""
    items, next_cursor = await service.alert_history(
        conn, caller.subject, limit=limit, cursor=cursor, cursor_key=cursor_key
    )
    return AlertPage(items=[AlertOut.of(a) for a in items], next_cursor=next_cursor)


@router.get(
    "/alerts/{rule_id}", response_model=AlertRuleOut, responses=error_responses(401, 403, 404)
)
async def get_rule(conn: DbConn, caller: Viewer, rule_id: UUID) -> AlertRuleOut:
    """One of the caller's alert rules."""
    return await _out(conn, await service.get_rule(conn, caller.subject, rule_id))


@router.patch(
    "/alerts/{rule_id}", response_model=AlertRuleOut, responses=error_responses(401, 403, 404, 422)
)
async def update_rule(
    conn: DbConn, caller: Viewer, rule_id: UUID, body: AlertRuleUpdate, changed: Changed
) -> AlertRuleOut:
    """Change one of the caller's alert rules (threshold, window, cooldown, active)."""
    rule = await service.update_rule(conn, caller.subject, rule_id, body, changed)
    return await _out(conn, rule)


@router.delete(
    "/alerts/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
)
async def delete_rule(conn: DbConn, caller: Viewer, rule_id: UUID, changed: Changed) -> Response:
    """Delete one of the caller's alert rules."""
    await service.delete_rule(conn, caller.subject, rule_id, changed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
