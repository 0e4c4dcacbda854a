"""Pure alert logic. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class Condition(StrEnum):
    PRICE_ABOVE = "price_above"
    PRICE_BELOW = "price_below"


@dataclass(frozen=True)
class AlertRule:
    id: UUID
    owner_id: str
    ticker: str
    condition: Condition
    threshold: Decimal
    active: bool
    created_at: datetime

    def is_met(self, price: Decimal) -> bool:
        if self.condition is Condition.PRICE_ABOVE:
            return price > self.threshold
        return price < self.threshold
