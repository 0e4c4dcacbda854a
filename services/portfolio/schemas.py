"""API models of the portfolio service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.portfolio.domain import Portfolio


class PortfolioCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    cash: Decimal = Field(default=Decimal("0"), ge=0, max_digits=20, decimal_places=4)


class PortfolioOut(BaseModel):
    id: UUID
    name: str
    base_currency: str
    cash: Decimal
    version: int
    created_at: datetime

    @classmethod
    def of(cls, portfolio: Portfolio) -> PortfolioOut:
        return cls.model_validate(portfolio, from_attributes=True)


class PortfolioList(BaseModel):
    items: list[PortfolioOut]
