"""The envelope every event travels in.

An event is an immutable, past-tense fact. The publishing service owns its payload model
and event type names; ``shared`` only fixes the envelope around them::

    class RunCompleted(BaseModel):
        run_id: UUID
        count: int

    event = Event[RunCompleted](event_type="run.completed", source="svc", data=...)

A consumer parses with its own model of the fields it reads (``Event[MyView]``); fields it
does not know are ignored, so a publisher may add fields without breaking consumers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class Event(BaseModel, Generic[T]):
    """An event: identity, type and version, when and where it happened, and its data.

    ``event_id`` is also the JetStream ``Nats-Msg-Id`` (publish dedupe) and the key of the
    consumers' inbox (idempotent handling). ``occurred_at`` must carry a time zone and is
    normalised to UTC.
    """

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str = Field(min_length=1, max_length=200)
    schema_version: int = Field(default=1, ge=1)
    occurred_at: UtcDatetime = Field(default_factory=_utc_now)
    source: str = Field(min_length=1, max_length=200)
    data: T
