"""Opaque, tamper-evident cursors for keyset pagination: one codec for every list.

A cursor is the keyset position after the last item a client saw (a ticker and a sort
value, a timestamp and an id...), handed back for the next page. Clients must treat it as
opaque, and the part must never hand a query a value it did not make itself: a forged
cursor of the right shape with a value of the wrong type was a 500 on three lists.

- **One schema per list.** Each list declares its position as a :class:`CursorPosition`
  model (strict types, no extra fields); decoding validates against it.
- **Signed.** ``<payload>.<tag>``: the payload is the position's JSON, the tag the first
  16 bytes of HMAC-SHA256 over the list's name and the payload, both base64url. A cursor
  a client edited, one made for another list, or one made by another deployment (another
  key) fails the tag check. HMAC rather than encryption: a position (a ticker, a
  timestamp) is no secret, only its integrity matters, and a signed cursor stays
  readable when debugging.
- **The key** is the part's ``<P>_CURSOR_KEY`` setting when the operator sets one;
  otherwise a random 32-byte key the part keeps in its own schema (table ``cursor_key``,
  made by the ``pagination`` migration, read by :mod:`shared.db.cursor_key`), so every
  replica of a part signs alike and two deployments never do. Changing the key ends
  outstanding cursors: clients get the 422 below and start the list again.

Every failure -- not base64, bad tag, wrong schema -- is one ``422 INVALID_CURSOR``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import ValidationFailedError

MIN_KEY_BYTES = 32
_TAG_BYTES = 16


class InvalidCursorError(ValidationFailedError):
    error_code = "INVALID_CURSOR"
    default_message = "The cursor is not valid; start again without one."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("details", {"field": "cursor"})
        super().__init__(message, **kwargs)


class CursorPosition(BaseModel):
    """Base of a list's keyset position: strict types, nothing else accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


P = TypeVar("P", bound=CursorPosition)


class CursorKey:
    """The secret that signs a part's cursors."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"a cursor key needs at least {MIN_KEY_BYTES} bytes")
        self._secret = secret

    def tag(self, list_name: str, payload: bytes) -> bytes:
        message = list_name.encode() + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def __repr__(self) -> str:
        return "CursorKey(<secret>)"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    # validate=True: characters outside the alphabet are an error, not silently dropped;
    # and only the canonical spelling is accepted (a last character differing in unused
    # bits would decode alike), so a cursor has exactly one form.
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64encode(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


class CursorCodec(Generic[P]):
    """The cursors of one list (``list_name``, unique across the platform), whose
    position is ``position``."""

    def __init__(self, list_name: str, position: type[P]) -> None:
        self.list_name = list_name
        self.position = position

    def encode(self, key: CursorKey, position: P) -> str:
        payload = position.model_dump_json().encode()
        return f"{_b64encode(payload)}.{_b64encode(key.tag(self.list_name, payload))}"

    def decode(self, key: CursorKey, cursor: str) -> P:
        """The position ``cursor`` holds, or :class:`InvalidCursorError`."""
        body, dot, tag = cursor.partition(".")
        try:
            payload, given = _b64decode(body), _b64decode(tag)
        except (binascii.Error, ValueError):
            raise InvalidCursorError() from None
        if not dot or not hmac.compare_digest(given, key.tag(self.list_name, payload)):
            raise InvalidCursorError()
        try:
            return self.position.model_validate_json(payload)
        except ValidationError:
            # Signed by us but not of this schema: made by an older version of the list.
            raise InvalidCursorError() from None
