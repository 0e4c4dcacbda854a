"""The model's view of a stock, as market keeps it: the latest live recommendation run of
the recommendations context and its call on each ticker (a read model; see
``services/market/model_view.py``). Pure values and the rule that orders runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class RunStamp:
    """What identifies and orders a run: one live run per trading day (``as_of``), so a
    later session is a newer run; ``generated_at`` breaks a tie that should not occur."""

    run_id: UUID
    as_of: date
    generated_at: datetime

    def supersedes(self, current: RunStamp | None) -> bool:
        """Whether this run should replace ``current`` (None: nothing held yet). The same
        run never replaces itself, and an older run never replaces a newer one."""
        if current is None:
            return True
        if self.run_id == current.run_id:
            return False
        return (self.as_of, self.generated_at) > (current.as_of, current.generated_at)


@dataclass(frozen=True, slots=True)
class HeldRun:
    """The run the read model holds."""

    stamp: RunStamp
    model_version: str
    calls: int
    refreshed_at: datetime


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One ticker's call in a run, with the fields the analysis serves."""

    ticker: str
    recommendation_id: UUID
    action: str
    confidence: float
    score: float
    target_price: float | None
    price_at_call: float
    horizon_days: int
    factors: list[dict[str, Any]]  # {key, value, z_score, contribution, percentile}
    thesis: str
    risk_factors: list[str]
    methodology_disclosure: str
    data_sources: list[str]


@dataclass(frozen=True, slots=True)
class ModelView:
    """What the read model says about one ticker: the run it holds (None: no run received
    yet) and the ticker's call in it (None: that run made no call on it)."""

    run: HeldRun | None
    call: ModelCall | None

    def reason(self, ticker: str) -> str | None:
        """Why there is no recommendation to show, or None when there is one."""
        if self.run is None:
            return (
                "No recommendation yet: no live recommendation run has been published"
                " (or none has reached the market service yet)."
            )
        if self.call is None:
            return (
                f"No recommendation yet for {ticker}: the latest run (as of"
                f" {self.run.stamp.as_of.isoformat()}) made no call on it."
            )
        return None
