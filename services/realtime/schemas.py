"""API models of the realtime service (REST; the WebSocket protocol is in ``streams``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.realtime.domain import AlertRule, Condition
from services.realtime.repository import StoredAlert
from shared.pagination import CursorCodec, CursorPosition

TICKER_PATTERN = r"^[A-Z]{1,5}([.-][A-Z])?$"


class AlertRuleCreate(BaseModel):
    """A new rule on one ``ticker`` or on each ticker of one of the caller's watchlists
    (``watchlist_id``; exactly one of the two). ``threshold`` is a price (``price_*``) or
    a percentage (``percent_move_*``); ``window_days`` the moving average's length
    (``ma_cross_*``); ``recommendation_change`` takes neither."""

    model_config = ConfigDict(extra="forbid")

    ticker: str | None = Field(default=None, pattern=TICKER_PATTERN)
    watchlist_id: UUID | None = None
    condition: Condition
    threshold: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=4)
    window_days: int | None = Field(default=None, ge=2, le=200)
    cooldown_seconds: int = Field(default=300, ge=0, le=604800)


class AlertRuleUpdate(BaseModel):
    """Fields to change; a changed rule is re-armed."""

    model_config = ConfigDict(extra="forbid")

    threshold: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=4)
    window_days: int | None = Field(default=None, ge=2, le=200)
    cooldown_seconds: int | None = Field(default=None, ge=0, le=604800)
    active: bool | None = None


class AlertRuleOut(BaseModel):
    id: UUID
    ticker: str | None = Field(description="Null for a rule on a watchlist.")
    watchlist_id: UUID | None = None
    tickers: list[str] | None = Field(
        default=None,
        description="A watchlist rule's tickers now (it applies to each); null otherwise.",
    )
    condition: Condition
    threshold: Decimal | None
    window_days: int | None
    cooldown_seconds: int
    active: bool
    armed: bool
    last_fired_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, rule: AlertRule, tickers: tuple[str, ...] | None = None) -> AlertRuleOut:
        out = cls.model_validate(rule, from_attributes=True)
        if rule.watchlist_id is not None:
            return out.model_copy(update={"ticker": None, "tickers": list(tickers or ())})
        return out


class AlertRuleList(BaseModel):
    items: list[AlertRuleOut]


class AlertOut(BaseModel):
    """A fired alert (also what ``/ws/alerts`` pushes, with ``"type": "alert"``)."""

    id: int
    rule_id: UUID | None
    ticker: str
    condition: str
    message: str
    data: dict[str, Any]
    fired_at: datetime

    @classmethod
    def of(cls, alert: StoredAlert) -> AlertOut:
        return cls.model_validate(alert, from_attributes=True)


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class AlertHistoryPosition(CursorPosition):
    """Where a page of alert history ends: the id below which the next page starts."""

    before: int = Field(ge=1, le=2**63 - 1)


ALERT_HISTORY_CURSOR = CursorCodec("realtime.alert_history", AlertHistoryPosition)
