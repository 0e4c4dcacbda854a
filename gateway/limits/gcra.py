"""The generic cell rate algorithm (GCRA), pure: the arithmetic both stores share.

A quota of ``limit`` requests per ``period`` admits a burst of ``limit`` and then one
request every ``period / limit``. A bucket is one number, its theoretical arrival time
(TAT); a request of cost ``c`` is admitted when ``TAT + c * interval - now <= period``.
Unlike a fixed window there is no boundary at which a client can send twice its quota.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

_US = 1_000_000


@dataclass(frozen=True)
class Quota:
    """``limit`` requests per ``period_seconds``, named for the ``RateLimit`` headers."""

    name: str
    limit: int
    period_seconds: float

    @cached_property
    def period_us(self) -> int:
        return round(self.period_seconds * _US)

    @cached_property
    def policy_header(self) -> bytes:
        return f'"{self.name}";q={self.limit};w={math.ceil(self.period_seconds)}'.encode()


@dataclass(frozen=True)
class Decision:
    """The outcome for the first (primary) bucket of a check, and whether all allowed."""

    allowed: bool
    quota: Quota
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after_seconds: int  # 0 when allowed

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return rate_limit_headers(self)


def rate_limit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers),
    plus ``Retry-After`` on a refusal."""
    quota = decision.quota
    headers = [
        (b"ratelimit-policy", quota.policy_header),
        (
            b"ratelimit",
            f'"{quota.name}";r={decision.remaining};t={decision.reset_seconds}'.encode(),
        ),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after_seconds).encode()))
    return headers


def decide(
    tats: Sequence[int | None],
    quotas: Sequence[Quota],
    now_us: int,
    cost: int = 1,
) -> tuple[Decision, list[int]]:
    """Check every bucket (all or nothing). Returns the decision and the new TATs to
    store (equal to the old ones, or ``now``, when refused)."""
    allowed = True
    results: list[tuple[int, int, int]] = []
    new_tats: list[int] = []
    for stored, quota in zip(tats, quotas, strict=True):
        interval = quota.period_us / quota.limit
        tat = max(stored if stored is not None else now_us, now_us)
        new_tat = tat + cost * interval
        over = new_tat - now_us - quota.period_us
        retry = 0.0
        if over > 0:
            allowed = False
            retry = over
            new_tat = tat
        used = new_tat - now_us
        results.append(
            (
                math.floor((quota.period_us - used) / interval),
                math.ceil(used),
                math.ceil(retry),
            )
        )
        new_tats.append(round(new_tat))
    remaining, reset_us, retry_us = results[0]
    if not allowed:
        # The retry that matters is the longest among the refusing buckets.
        retry_us = max(r[2] for r in results)
        new_tats = [max(t if t is not None else now_us, now_us) for t in tats]
    return (
        decision_from(allowed, quotas[0], remaining, reset_us, retry_us),
        new_tats,
    )


def decision_from(
    allowed: bool, quota: Quota, remaining: int, reset_us: int, retry_us: int
) -> Decision:
    return Decision(
        allowed=allowed,
        quota=quota,
        remaining=max(0, remaining),
        reset_seconds=math.ceil(reset_us / _US),
        # Round up: a client that waits Retry-After seconds must then be admitted.
        retry_after_seconds=max(1, math.ceil(retry_us / _US)) if not allowed else 0,
    )
