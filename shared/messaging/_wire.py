"""Wire details shared by core NATS and JetStream: namespacing, encoding, headers."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.context import REQUEST_ID_HEADER, accept_request_id, get_request_id, set_request_id

logger = logging.getLogger("shared.messaging")

M = TypeVar("M", bound=BaseModel)

# Reply header marking an error envelope; its value is the HTTP-like status code.
ERROR_HEADER = "Bourse-Error-Status"
MSG_ID_HEADER = "Nats-Msg-Id"

_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,32}$")
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a handler learns about a message besides its payload.

    ``subject`` is logical (without the bus prefix). ``num_delivered`` is 1 for core NATS
    and counts deliveries (1 + redeliveries) for JetStream, where ``stream_sequence`` is set.
    """

    subject: str
    request_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    num_delivered: int = 1
    stream_sequence: int | None = None


MessageHandler = Callable[[M, Delivered], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Namespace:
    """Maps logical subjects and stream names to the wire, under an optional prefix.

    With prefix ``t1``: subject ``a.b`` is ``t1.a.b`` on the wire, stream ``EVENTS`` is
    ``T1_EVENTS``. Tests use it to run in isolation on a shared server.
    """

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"invalid bus prefix {self.prefix!r}: use letters, digits, _ or -")

    def subject(self, logical: str) -> str:
        return f"{self.prefix}.{logical}" if self.prefix else logical

    def logical(self, wire: str) -> str:
        if self.prefix and wire.startswith(self.prefix + "."):
            return wire[len(self.prefix) + 1 :]
        return wire

    def stream(self, name: str) -> str:
        if not _STREAM.match(name):
            raise ValueError(f"invalid stream name {name!r}: use letters, digits, _ or -")
        return f"{self.prefix.upper()}_{name}" if self.prefix else name


def encode(payload: BaseModel) -> bytes:
    """JSON bytes of ``payload``, as ``model_dump_json`` but without the str round trip."""
    return type(payload).__pydantic_serializer__.to_json(payload)


def outgoing_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """``headers`` plus the current request id (an explicit header wins)."""
    request_id = get_request_id()
    if request_id is None and not headers:
        return None
    result: dict[str, str] = {}
    if request_id is not None:
        result[REQUEST_ID_HEADER] = request_id
    if headers:
        result.update(headers)
    return result


def bind_request_id(headers: Mapping[str, str] | None) -> str:
    """Bind the message's request id (or a new one) to the current task and return it."""
    request_id = accept_request_id(headers.get(REQUEST_ID_HEADER) if headers else None)
    set_request_id(request_id)
    return request_id


def validation_problems(exc: ValidationError) -> list[dict[str, Any]]:
    """Where and why validation failed, without echoing the submitted values."""
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
