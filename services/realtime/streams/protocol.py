"""The JSON protocol of the streams (documented, with examples, in docs/realtime.md).

Client -> server: one JSON object per text frame::

    {"action": "subscribe", "tickers": ["ACME", "BRK.B"]}
    {"action": "unsubscribe", "tickers": ["ACME"]}
    {"action": "ping", "id": "anything"}

Server -> client: every frame is a JSON *array* of messages (as Alpaca and Polygon do), so
quotes can be batched: ``connected``, ``subscribed``, ``unsubscribed``, ``quote``,
``alert``, ``error``, ``pong``, ``heartbeat``. Pure functions; no I/O.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from services.realtime.feeds import Tick

TICKER = re.compile(r"^[A-Z]{1,5}([.-][A-Z])?$")
MAX_TICKERS_PER_ACTION = 1000

# Close codes (RFC 6455 section 7.4; 4000-4999 are ours).
CLOSE_GOING_AWAY = 1001  # the node is shutting down: reconnect
CLOSE_POLICY = 1008  # a limit was hit (see the error message sent just before)
CLOSE_SLOW_CONSUMER = 4008  # the client fell too far behind the stream


class ProtocolError(Exception):
    """A client message we cannot act on; becomes an ``error`` message, not a close."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["subscribe", "unsubscribe", "ping"]
    tickers: tuple[str, ...] = ()
    ping_id: Any = None


def parse_action(raw: str | bytes, *, allowed: frozenset[str]) -> Action:
    """Parse one client frame; raise :class:`ProtocolError` saying what is wrong."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError("BAD_MESSAGE", "A message must be a JSON object.") from None
    if not isinstance(message, dict):
        raise ProtocolError("BAD_MESSAGE", "A message must be a JSON object.")
    kind = message.get("action")
    if kind not in allowed:
        raise ProtocolError(
            "UNKNOWN_ACTION",
            f"Unknown action; expected one of {sorted(allowed)}.",
            {"action": kind if isinstance(kind, str) else None},
        )
    if kind == "ping":
        return Action("ping", ping_id=message.get("id"))
    tickers = message.get("tickers")
    if not isinstance(tickers, list) or not tickers:
        raise ProtocolError("BAD_MESSAGE", f"'{kind}' needs a non-empty list 'tickers'.")
    if len(tickers) > MAX_TICKERS_PER_ACTION:
        raise ProtocolError(
            "BAD_MESSAGE",
            f"At most {MAX_TICKERS_PER_ACTION} tickers per message.",
            {"limit": MAX_TICKERS_PER_ACTION},
        )
    normalised: dict[str, None] = {}
    invalid = []
    for item in tickers:
        ticker = item.strip().upper() if isinstance(item, str) else None
        if ticker is None or not TICKER.match(ticker):
            invalid.append(item if isinstance(item, str) else repr(item)[:20])
        else:
            normalised[ticker] = None
    if invalid:
        raise ProtocolError(
            "INVALID_TICKER",
            "Tickers are 1-5 letters, optionally with a class suffix (BRK.B, BF-B).",
            {"invalid": invalid[:20]},
        )
    return Action(kind, tuple(normalised))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_quote(tick: Tick, *, snapshot: bool = False) -> bytes:
    """A ``quote`` message (one JSON object); encoded once per tick, sent to every socket."""
    message: dict[str, Any] = {
        "type": "quote",
        "ticker": tick.ticker,
        "price": tick.price,
        "change": tick.change,
        "change_percent": tick.change_percent,
        "volume": tick.volume,
        "ts": tick.ts,
    }
    if snapshot:
        message["snapshot"] = True
    return orjson.dumps(message)


def message(kind: str, **fields: Any) -> bytes:
    """A control message (one JSON object)."""
    return orjson.dumps({"type": kind, **fields})


def error(code: str, text: str, details: dict[str, Any] | None = None) -> bytes:
    return message("error", code=code, message=text, details=details or {})


def frame(messages: list[bytes]) -> str:
    """The text of one frame carrying ``messages``."""
    return (b"[" + b",".join(messages) + b"]").decode()
