"""Our view of what the recommendations context sends us, and what we ask it.

We never import the recommendations package (its models live in
``services/recommendations/events.py``): these classes are the fields we read, unknown
fields ignored, so the publisher may add some. ``tests/test_contract_market_recommendations.py``
checks them against the publisher's models.

- ``recommendations.run.completed`` (JetStream stream ``RECOMMENDATIONS``, durable):
  ``Event[RunCompleted]``, a live run was published. It carries only the calls whose action
  changed (in one or more parts), so it is a signal to refresh, not the data.
- ``recommendations.rpc.latest``: :class:`LatestRequest` -> :class:`LatestReply`, every call
  of the latest live run a page at a time (the cursor keeps a walk on the run it started
  on); every run field null before any live run.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

STREAM = "RECOMMENDATIONS"
RUN_COMPLETED = "recommendations.run.completed"
LATEST_RPC = "recommendations.rpc.latest"
PAGE = 200  # calls per reply: the publisher allows 250; each reply stays well under 1 MB


class RunCompleted(BaseModel):
    """The data of ``recommendations.run.completed`` as we read it."""

    model_config = ConfigDict(extra="ignore")

    run_id: UUID
    as_of: date
    generated_at: datetime
    total_recommendations: int = Field(ge=0)


class LatestRequest(BaseModel):
    tickers: list[str] | None = None  # None: the whole run, paged
    cursor: str | None = None
    limit: int = PAGE


class LatestFactor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str
    value: float | None
    z_score: float
    contribution: float
    percentile: float | None = None


class LatestCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    ticker: str
    action: Literal["BUY", "HOLD", "SELL"]
    confidence: float = Field(ge=0, le=1)
    score: float
    target_price: float | None
    price_at_call: float
    horizon_days: int
    thesis: str
    risk_factors: list[str]
    factors: list[LatestFactor]
    methodology_disclosure: str
    data_sources: list[str]


class LatestReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: UUID | None
    as_of: date | None
    model_version: str | None
    generated_at: datetime | None
    calls: list[LatestCall]
    next_cursor: str | None = None
