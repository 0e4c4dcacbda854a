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
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

STREAM = "RECOMMENDATIONS"
STREAM_SUBJECTS = ["recommendations.>"]
RUN_COMPLETED = "recommendations.run.completed"
RUN_COMPLETED_VERSION = 2  # 2: published_at became generated_at (the contract's name)
SOURCE = "recommendations"
MAX_CHANGES_PER_EVENT = 1000

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
