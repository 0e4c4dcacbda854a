"""Published calls: what the ledger stores for each, and what the run event reports.

A :class:`Recommendation` is one ledger row: the API contract's fields, the model's reasons
(factors), the inputs it read (``inputs``, hashed into ``inputs_hash``) and its place in
the hash chain (``seq``, ``content_hash``, ``prev_hash``, ``hash``; see :mod:`.ledger`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


class Action(StrEnum):
    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"


@dataclass(frozen=True)
class Recommendation:
    id: UUID
    run_id: UUID
    ticker: str
    sector: str | None
    action: Action
    confidence: Decimal
    score: float
    target_price: Decimal | None
    price_at_call: Decimal
    thesis: str
    risk_factors: tuple[str, ...]
    methodology_disclosure: str
    data_sources: tuple[str, ...]
    generated_at: datetime
    model_version: str
    horizon_days: int
    as_of: date
    hypothetical: bool
    factors: tuple[Mapping[str, Any], ...]  # {key, value, z_score, contribution, percentile}
    inputs: Mapping[str, Any]
    inputs_hash: str
    seq: int = 0
    content_hash: str = ""
    prev_hash: str = ""
    hash: str = ""

    def content(self) -> dict[str, Any]:
        """The fields the ledger hashes (see :data:`ledger.CONTENT_FIELDS`)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "run_id": self.run_id,
            "ticker": self.ticker,
            "sector": self.sector,
            "action": self.action.value,
            "confidence": self.confidence,
            "score": self.score,
            "target_price": self.target_price,
            "price_at_call": self.price_at_call,
            "thesis": self.thesis,
            "risk_factors": list(self.risk_factors),
            "methodology_disclosure": self.methodology_disclosure,
            "data_sources": list(self.data_sources),
            "generated_at": self.generated_at,
            "model_version": self.model_version,
            "horizon_days": self.horizon_days,
            "as_of": self.as_of,
            "hypothetical": self.hypothetical,
            "factors": [dict(f) for f in self.factors],
            "inputs": dict(self.inputs),
            "inputs_hash": self.inputs_hash,
        }


@dataclass(frozen=True)
class Run:
    id: UUID
    model_version: str
    as_of: date
    recommendations: tuple[Recommendation, ...]
    hypothetical: bool = False


@dataclass(frozen=True)
class RunRecord:
    """A run as the runs table keeps it."""

    id: UUID
    kind: str  # scheduled | on_demand | backfill
    trading_day: date | None  # None while an on-demand run is queued
    hypothetical: bool
    status: str  # queued | running | completed | failed
    model_version: str
    requested_by: str | None
    trigger_event: UUID | None
    universe: int | None
    called: int | None
    changed: int | None
    calibration: Mapping[str, Any]
    timings: Mapping[str, float]
    error: str | None
    started_at: datetime
    completed_at: datetime | None


def action_changes(
    recommendations: Iterable[Recommendation], previous: Mapping[str, Action]
) -> list[tuple[Recommendation, Action | None]]:
    """The recommendations whose action differs from the ticker's previous one (or that
    are its first), each with that previous action."""
    changed = []
    for rec in recommendations:
        before = previous.get(rec.ticker)
        if before is not rec.action:
            changed.append((rec, before))
    return changed


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``; one empty slice if none."""
    if size < 1:
        raise ValueError("size must be positive")
    return [items[i : i + size] for i in range(0, len(items), size)] or [items[:0]]
