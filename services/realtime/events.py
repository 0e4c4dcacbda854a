"""Subjects and payloads the realtime service publishes.

- ``alerts.user.<owner_id>`` (core NATS): an alert was fired for that user; every node
  pushes it to that user's ``/ws/alerts`` sockets. Core NATS is enough: the alert is
  already committed in ``alerts`` and a client that missed it live gets it on resume.
- ``realtime.rules.changed`` (core NATS, internal to realtime): a rule was created,
  changed or deleted; every node reloads it (and all rules every
  ``rules_reload_seconds``, in case a notification was lost).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

ALERTS_WILDCARD = "alerts.user.*"
RULES_CHANGED = "realtime.rules.changed"


def alerts_subject(owner_id: str) -> str:
    """The subject of ``owner_id``'s alerts (a subject token: no dots or wildcards)."""
    return "alerts.user." + owner_id.replace(".", "_").replace("*", "_").replace(">", "_")


class AlertFired(BaseModel):
    """schema_version 1."""

    id: int
    owner_id: str
    rule_id: UUID | None
    ticker: str
    condition: str
    message: str
    data: dict[str, Any]
    fired_at: datetime


class RuleChanged(BaseModel):
    """schema_version 1. ``rule_id`` was created, changed or deleted."""

    rule_id: UUID
    owner_id: str
