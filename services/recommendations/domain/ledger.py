"""The hash chain over published recommendations.

Each row's *content hash* is the SHA-256 of its canonical content: every published field
(:data:`CONTENT_FIELDS`) as JSON with sorted keys and no whitespace, numbers written the way
the database returns them (decimals as their exact text, floats as their shortest repr,
timestamps in UTC ISO 8601). Its *hash* is ``sha256(prev_hash + content_hash)``, with
``prev_hash`` the hash of the row before it in ledger order (``seq``), 64 zeros for the
first. Changing any field of any row, removing a row, or reordering rows breaks the chain
at that row; :func:`verify` finds the first break.

Verification reads rows in their *stored form* (:data:`Stored`): the links, the score, and
the rest of the content as one JSON text that PostgreSQL writes with the values already in
their canonical text (decimals, ids, dates), so a row costs one JSON parse and one JSON
write here instead of a typed decode of 22 columns and a Python object per field.
:func:`stored_content` turns it back into exactly the content :func:`canonical` hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

GENESIS = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# seq, id, content_hash, prev_hash, hash, score, content in wire form (JSON bytes)
Stored = tuple[int, UUID, str, str, str, float, bytes]

CONTENT_FIELDS = (
    "seq",
    "id",
    "run_id",
    "ticker",
    "sector",
    "action",
    "confidence",
    "score",
    "target_price",
    "price_at_call",
    "thesis",
    "risk_factors",
    "methodology_disclosure",
    "data_sources",
    "generated_at",
    "model_version",
    "horizon_days",
    "as_of",
    "hypothetical",
    "factors",
    "inputs",
    "inputs_hash",
)


def _text(value: Any) -> str:
    """How values JSON has no type for are written: decimals as their exact text, dates
    and timestamps in ISO 8601 (``datetime.isoformat``)."""
    if isinstance(value, Decimal | UUID):  # asyncpg's UUID subclass is not orjson's uuid
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no whitespace (ids, decimals and dates as
    text). orjson writes UUIDs, tuples and floats (shortest round-trip form) itself."""
    return orjson.dumps(
        value,
        default=_text,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
    )


def canonical(content: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a row's content (exactly :data:`CONTENT_FIELDS`)."""
    missing = set(CONTENT_FIELDS) - set(content)
    if missing:
        raise ValueError(f"content lacks {sorted(missing)}")
    return canonical_json({k: content[k] for k in CONTENT_FIELDS})


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(content: Mapping[str, Any]) -> str:
    return digest(canonical(content))


def chain_hash(prev_hash: str, content: str) -> str:
    return digest((prev_hash + content).encode())


@dataclass(frozen=True)
class Link:
    seq: int
    id: UUID
    content_hash: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Break:
    seq: int
    id: UUID
    reason: str  # "content" | "previous" | "hash" | "gap"
    expected: str
    found: str


def link(seq: int, content: Mapping[str, Any], prev_hash: str) -> Link:
    own = content_hash(content)
    return Link(seq, content["id"], own, prev_hash, chain_hash(prev_hash, own))


def verify(
    rows: Iterable[tuple[Link, Mapping[str, Any]]], *, prev_hash: str, prev_seq: int | None
) -> tuple[Break | None, str, int | None, int]:
    """Check ``rows`` (stored link, stored content), in ``seq`` order, continuing after a
    row whose hash is ``prev_hash`` and seq is ``prev_seq``.

    Returns the first break (or None), and the last hash, last seq and count checked, so a
    long ledger is verified in batches.
    """
    checked = 0
    for stored, content in rows:
        checked += 1
        if prev_seq is not None and stored.seq != prev_seq + 1:
            found = Break(stored.seq, stored.id, "gap", str(prev_seq + 1), str(stored.seq))
            return found, prev_hash, prev_seq, checked
        recomputed = content_hash(content)
        if recomputed != stored.content_hash:
            found = Break(stored.seq, stored.id, "content", recomputed, stored.content_hash)
            return found, prev_hash, prev_seq, checked
        if stored.prev_hash != prev_hash:
            found = Break(stored.seq, stored.id, "previous", prev_hash, stored.prev_hash)
            return found, prev_hash, prev_seq, checked
        expected = chain_hash(prev_hash, recomputed)
        if stored.hash != expected:
            found = Break(stored.seq, stored.id, "hash", expected, stored.hash)
            return found, prev_hash, prev_seq, checked
        prev_hash, prev_seq = stored.hash, stored.seq
    return None, prev_hash, prev_seq, checked


def stored_content(body: bytes, score: float, stamps: dict[int, str]) -> dict[str, Any]:
    """A row's content from its stored form: ``body`` is the JSON of every content field
    but ``score`` (given apart, as the float8 it is), with ``generated_at`` in epoch
    microseconds. ``stamps`` caches the ISO text of each timestamp (a run's rows share
    one)."""
    content: dict[str, Any] = orjson.loads(body)
    micros = content["generated_at"]
    text = stamps.get(micros)
    if text is None:
        text = stamps[micros] = (_EPOCH + timedelta(microseconds=micros)).isoformat()
    content["generated_at"] = text
    content["score"] = score
    return content


def verify_stored(
    rows: Iterable[Stored], *, prev_hash: str, prev_seq: int | None
) -> tuple[Break | None, str, int | None, int]:
    """:func:`verify` over rows in their stored form, each parsed only when its turn
    comes (a batch never holds more than one row's content)."""
    stamps: dict[int, str] = {}
    return verify(
        (
            (Link(seq, id_, own, prev, hash_), stored_content(body, score, stamps))
            for seq, id_, own, prev, hash_, score, body in rows
        ),
        prev_hash=prev_hash,
        prev_seq=prev_seq,
    )
