"""Request input that could never be stored, refused by every route of every part.

Validators let through values that PostgreSQL then refuses, and each became a 500 once it
reached a query: NUL (U+0000) in text (``GET /stocks?q=%00``, a name in a JSON body; jsonb
refuses ``\\u0000`` too) and lone UTF-16 surrogates (JSON ``"\\ud800"``), which have no UTF-8
form. JSON bodies may also hold ``NaN``, ``Infinity`` or a literal too large for a double:
Python's parser accepts them although JSON does not, and they filter and compute oddly.

:func:`check_storable_input` closes that class for every route at once, whatever the route
declares: the app factory (:func:`shared.http.create_service_app`) installs it as a
dependency of every HTTP route, ahead of the route's own, so it runs before any parameter
is used. It reads the raw input -- query string, path parameters, JSON and form bodies,
any other body as text (a CSV import) -- and answers 422 in the envelope naming each
offending field (``loc``, as validation errors do). The common case costs a few
substring tests and, for a JSON body, one parse by orjson (microseconds).

Numbers in query and path parameters are text until the route's type parses them, so
they are refused by type: declare them as :data:`FiniteFloat` (``tests/test_input_classes``
walks every part's OpenAPI so that a new one cannot slip through).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import Field
from starlette.requests import HTTPConnection, Request
from starlette.types import Scope

# A float that is a number: ``nan``, ``inf`` and literals beyond a double's range are a 422.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_JSON_TYPES = ("application/json", "+json")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Problem = dict[str, Any]


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store ``text``, or None when it could."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "Text may not contain the NUL character (U+0000)."
    return "Text may not contain an unpaired UTF-16 surrogate."


def _escape(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def _problem(loc: tuple[str | int, ...], msg: str, kind: str) -> Problem:
    return {"loc": loc, "msg": msg, "type": kind, "input": None}


def _text(loc: tuple[str | int, ...], text: str) -> Iterator[Problem]:
    msg = text_problem(text)
    if msg is not None:
        yield _problem(loc, msg, "unstorable_text")


def _json_value(loc: tuple[str | int, ...], value: Any) -> Iterator[Problem]:
    if isinstance(value, str):
        yield from _text(loc, value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield _problem(loc, "Input should be a finite number", "finite_number")
    elif isinstance(value, dict):
        for key, item in value.items():
            # The key as the client wrote it, escaped: the error is rendered as JSON, and
            # an unpaired surrogate has no UTF-8 form there either.
            named = (*loc, _UNSTORABLE.sub(_escape, key))
            yield from _text(named, key)
            yield from _json_value(named, item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_value((*loc, index), item)


async def _form_problems(request: Request) -> list[Problem]:
    form = await request.form()
    return [
        p
        for name, value in form.multi_items()
        if isinstance(value, str)  # files are bytes; what a route stores of them is its own
        for p in _text(("body", name), value)
    ]


async def _body_problems(request: Request, content_type: str) -> list[Problem]:
    try:
        body = await request.body()
    except RuntimeError:
        # A form route has parsed its form already: Starlette keeps the form, not the bytes.
        return await _form_problems(request) if content_type in _FORM_TYPES else []
    if not body:
        return []
    if content_type.endswith(_JSON_TYPES):
        if b"\\u0000" not in body:
            # orjson refuses what Python's parser lets through (NaN, Infinity, numbers
            # beyond a double, unpaired surrogates) and parses faster than a scan: the
            # body is looked at again only when it fails or may hold a NUL.
            try:
                orjson.loads(body)
                return []
            except orjson.JSONDecodeError:
                pass
        try:
            parsed = json.loads(body)  # what FastAPI parses
            return list(_json_value(("body",), parsed))
        except (ValueError, RecursionError):
            return []  # not JSON, or nested past parsing: the route's own parsing answers
    if content_type == "multipart/form-data":
        return await _form_problems(request) if b"\x00" in body else []
    if content_type == "application/x-www-form-urlencoded" and b"%00" in body:
        # Parsed only when it may hold a NUL; a CSV posted as curl's default form type
        # still reaches its route as bytes.
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        return [p for name, value in fields for p in _text(("body", name), value)]
    # Every other body is text to the routes that read it (CSV imports): a raw NUL byte
    # is refused wherever it is. (A route taking binary bodies would need an exemption.)
    nul = body.find(b"\x00")
    if nul < 0:
        return []
    line = body.count(b"\n", 0, nul) + 1
    return [
        _problem(
            ("body",),
            f"The body may not contain the NUL character (line {line}).",
            "unstorable_text",
        )
    ]


def _body_type(scope: Scope) -> str | None:
    """The media type of the request's body ("" when not given), None without a body."""
    has_body, media = False, ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            has_body = True
    return media if has_body else None


async def check_storable_input(connection: HTTPConnection) -> None:
    """Refuse (422, each field named) a request whose query string, path parameters or
    body (JSON, form or other text) hold text PostgreSQL cannot store or whose JSON holds
    a non-finite number. WebSocket handshakes pass: their few parameters are parsed by
    the stream itself."""
    if not isinstance(connection, Request):
        return
    scope = connection.scope
    problems: list[Problem] = []
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in connection.query_params.multi_items():
            problems.extend(_text(("query", name), value))
    if "\x00" in scope["path"]:  # the decoded path: %00 is a NUL here
        for name, value in connection.path_params.items():
            if isinstance(value, str):
                problems.extend(_text(("path", name), value))
    media = _body_type(scope)
    if media is not None:
        problems.extend(await _body_problems(connection, media))
    if problems:
        raise RequestValidationError(problems)


__all__ = ["FiniteFloat", "check_storable_input", "text_problem"]
