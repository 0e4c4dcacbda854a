"""The hash chain over published recommendations.

Each row's *content hash* is the SHA-256 of its canonical content: every published field
(:data:`CONTENT_FIELDS`) as JSON with sorted keys and no whitespace, numbers written the way
the database returns them (decimals as their exact text, floats as their shortest repr,
timestamps in UTC ISO 8601). Its *hash* is ``sha256(prev_hash + content_hash)``, with
``prev_hash`` the hash of the row before it in ledger order (``seq``), 64 zeros for the
first. Changing any field of any row, removing a row, or reordering rows breaks the chain
at that row; :func:`verify` finds the first break.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

GENESIS = "0" * 64

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
