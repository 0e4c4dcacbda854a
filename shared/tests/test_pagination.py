"""The cursor codec: signed, schema-checked, one list's cursors only (no database)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from pydantic import AwareDatetime, Field

from shared.pagination import CursorCodec, CursorKey, CursorPosition, InvalidCursorError


class Position(CursorPosition):
    published_at: AwareDatetime
    id: UUID


class Count(CursorPosition):
    before: int = Field(ge=1)


KEY = CursorKey(b"k" * 32)
LIST = CursorCodec("tests.list", Position)


def _position() -> Position:
    return Position(published_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), id=uuid4())


def test_a_cursor_round_trips_to_the_same_typed_position() -> None:
    position = _position()
    cursor = LIST.encode(KEY, position)
    assert LIST.decode(KEY, cursor) == position
    assert cursor.isascii() and "=" not in cursor


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_any_edit_to_a_cursor_is_refused() -> None:
    cursor = LIST.encode(KEY, _position())
    for index in range(len(cursor)):
        if cursor[index] == ".":
            continue
        edited = _flip(cursor, index)
        with pytest.raises(InvalidCursorError):
            LIST.decode(KEY, edited)


def test_a_cursor_is_good_for_its_own_list_and_key_only() -> None:
    cursor = CursorCodec("tests.other", Position).encode(KEY, _position())
    with pytest.raises(InvalidCursorError):
        LIST.decode(KEY, cursor)
    with pytest.raises(InvalidCursorError):
        LIST.decode(CursorKey(b"x" * 32), LIST.encode(KEY, _position()))


def test_a_signed_payload_of_another_schema_is_refused() -> None:
    # Signed with the right key and list (as an older version of the list might have),
    # but the values do not fit the schema: still 422, never a value for a query.
    for payload in (b'{"published_at": 5, "id": "x"}', b'{"before": "x"}', b"[1]", b"nul"):
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        tag = base64.urlsafe_b64encode(KEY.tag("tests.list", payload)).rstrip(b"=").decode()
        with pytest.raises(InvalidCursorError):
            LIST.decode(KEY, f"{body}.{tag}")


@pytest.mark.parametrize("cursor", ["", ".", "x", "a.b", "é.é", "a b.c", "e30", "e30.====="])
def test_garbage_is_an_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursorError) as raised:
        LIST.decode(KEY, cursor)
    assert raised.value.status_code == 422
    assert raised.value.error_code == "INVALID_CURSOR"


def test_strict_types_refuse_what_lax_parsing_would_coerce() -> None:
    codec = CursorCodec("tests.count", Count)
    payload = b'{"before": "12"}'
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    tag = base64.urlsafe_b64encode(KEY.tag("tests.count", payload)).rstrip(b"=").decode()
    with pytest.raises(InvalidCursorError):
        codec.decode(KEY, f"{body}.{tag}")
    assert codec.decode(KEY, codec.encode(KEY, Count(before=12))).before == 12


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        CursorKey(b"short")
