"""The request id: one value that follows a request through the gateway, every
service it reaches and every NATS message sent on its behalf."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Accept a caller's id only if it is short and plain, so it is safe in logs and headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    """Return a fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Return ``candidate`` if it is a well-formed request id, else a new one."""
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()


def get_request_id() -> str | None:
    """The request id of the current task, if one is bound."""
    return _request_id.get()


def set_request_id(request_id: str | None) -> None:
    """Bind ``request_id`` to the current task (and the tasks it creates)."""
    _request_id.set(request_id)
