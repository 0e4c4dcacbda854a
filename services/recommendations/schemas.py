"""API models of the recommendations service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel

from services.recommendations.domain import Action, Recommendation
from shared.pagination import CursorCodec, CursorPosition


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


class RecommendationPosition(CursorPosition):
    """Where a page of recommendations ends (newest first): the last one's publication
    time and id."""

    published_at: AwareDatetime
    id: UUID


RECOMMENDATIONS_CURSOR = CursorCodec("recommendations.recommendations", RecommendationPosition)
