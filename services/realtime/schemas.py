"""API models of the realtime service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.realtime.domain import AlertRule, Condition


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticker: str = Field(pattern=r"^[A-Z]{1,5}([.-][A-Z])?$")
    condition: Condition
    threshold: Decimal = Field(gt=0, max_digits=18, decimal_places=4)


class AlertRuleOut(BaseModel):
    id: UUID
    ticker: str
    condition: Condition
    threshold: Decimal
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, rule: AlertRule) -> AlertRuleOut:
        return cls.model_validate(rule, from_attributes=True)


class AlertRuleList(BaseModel):
    items: list[AlertRuleOut]
