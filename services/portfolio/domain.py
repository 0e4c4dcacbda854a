"""Pure portfolio logic. No I/O. Money is ``Decimal``, never float."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True)
class Portfolio:
    id: UUID
    owner_id: str
    name: str
    base_currency: str
    cash: Decimal
    version: int
    created_at: datetime
