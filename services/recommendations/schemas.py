"""API models of the recommendations service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

from services.recommendations.domain import Action, Recommendation


class RecommendationOut(BaseModel):
    id: UUID
    run_id: UUID
    ticker: str
    action: Action
    confidence: Decimal
    price_at_call: Decimal
    target_price: Decimal | None
    rationale: str
    disclosure: str
    published_at: datetime

    @classmethod
    def of(cls, rec: Recommendation) -> RecommendationOut:
        return cls.model_validate(rec, from_attributes=True)


class RecommendationPage(BaseModel):
    items: list[RecommendationOut]
    next_cursor: str | None
