"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item a client saw, encoded so clients treat it
as opaque. A cursor that does not decode is the client's error (422), never a 500.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from shared.errors import ValidationFailedError


class InvalidCursorError(ValidationFailedError):
    error_code = "INVALID_CURSOR"
    default_message = "The cursor is not valid; start again without one."


def encode_cursor(position: dict[str, Any]) -> str:
    """Encode a keyset position (JSON-serialisable) as an opaque string."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """Decode ``cursor``; it must hold exactly ``keys``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursorError() from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise InvalidCursorError()
    return position
