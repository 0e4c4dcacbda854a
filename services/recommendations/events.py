"""What the recommendations service publishes. It owns these subjects and payloads.

``recommendations.run.requested`` (same stream, through the outbox): an on-demand run
was queued; only this service's runner consumes it.

``recommendations.run.completed`` (JetStream stream ``RECOMMENDATIONS``, through the
outbox): a run was published. It carries the recommendations whose action changed from
the previous call on the same ticker (or that are the first call on it): that is what
consumers act on (alert rules, portfolios). The full run is at
``GET /api/v1/recommendations``. Only live runs publish it: a backfilled (hypothetical)
run is history, not news. A run with many changes is split into ``parts`` events
of at most :data:`MAX_CHANGES_PER_EVENT` changes, so no message nears NATS's payload limit.

``recommendations.rpc.latest`` (request/reply): every call of the latest live run, or
those of given tickers, for contexts that keep a view of them (market's ``include_ml``,
portfolio's x-ray and watchlists).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

STREAM = "RECOMMENDATIONS"
STREAM_SUBJECTS = ["recommendations.run.>"]  # not rpc.*: a stream would ack requests
RUN_COMPLETED = "recommendations.run.completed"
RUN_COMPLETED_VERSION = 2  # 2: published_at became generated_at (the contract's name)
SOURCE = "recommendations"
MAX_CHANGES_PER_EVENT = 1000
TICKER_PATTERN = r"^[A-Z]{1,5}([.-][A-Z])?$"

ActionName = Literal["BUY", "HOLD", "SELL"]


RUN_REQUESTED = "recommendations.run.requested"


class RunRequested(BaseModel):
    """An on-demand run was queued (``POST /runs``); this service's own runner takes it.
    Through the outbox, so a queued run is never lost between the request and the runner."""

    run_id: UUID
    as_of: date | None


class ActionChanged(BaseModel):
    recommendation_id: UUID
    ticker: str
    action: ActionName
    previous_action: ActionName | None
    confidence: float
    price_at_call: float
    target_price: float | None


class RunCompleted(BaseModel):
    run_id: UUID
    as_of: date
    model_version: str
    generated_at: datetime
    total_recommendations: int
    part: int
    parts: int
    changes: list[ActionChanged]


# --- request/reply ----------------------------------------------------------------------

RPC_LATEST = "recommendations.rpc.latest"
"""``recommendations.rpc.latest``: :class:`LatestRequest` -> :class:`LatestReply`, the latest
live run's calls (for the given tickers, or all of them a page at a time by ticker). A
cursor keeps paging the run it started on, so a run published meanwhile never mixes into
a walk; the next walk starts on it. Before any live run: every run field null, no calls."""

MAX_LATEST_PAGE = 250  # a call with its disclosure is ~3 KB: a page stays under 1 MB


class LatestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickers: list[Annotated[str, Field(pattern=TICKER_PATTERN)]] | None = Field(
        None, max_length=MAX_LATEST_PAGE
    )
    cursor: str | None = Field(None, max_length=64)
    limit: int = Field(200, ge=1, le=MAX_LATEST_PAGE)


class LatestFactor(BaseModel):
    key: str
    value: float | None
    z_score: float
    contribution: float
    percentile: float | None


class LatestCall(BaseModel):
    id: UUID
    ticker: str
    action: ActionName
    confidence: float
    score: float
    target_price: float | None
    price_at_call: float
    horizon_days: int
    sector: str | None
    thesis: str
    risk_factors: list[str]
    factors: list[LatestFactor]
    methodology_disclosure: str
    data_sources: list[str]
    hypothetical: bool


class LatestReply(BaseModel):
    run_id: UUID | None
    as_of: date | None
    model_version: str | None
    generated_at: datetime | None
    calls: list[LatestCall]
    missing: list[str]
    next_cursor: str | None
