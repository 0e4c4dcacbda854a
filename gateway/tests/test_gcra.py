"""The GCRA arithmetic (pure) and the local fallback store."""

from __future__ import annotations

from gateway.limits.gcra import Quota, decide, rate_limit_headers
from gateway.limits.limiter import LocalBuckets

SECOND = 1_000_000


def run(quota: Quota, times_us: list[int]) -> list[bool]:
    tat: int | None = None
    outcomes = []
    for now in times_us:
        decision, (new_tat,) = decide([tat], [quota], now)
        outcomes.append(decision.allowed)
        tat = new_tat
    return outcomes


def test_a_burst_of_exactly_the_limit_then_one_per_interval() -> None:
    quota = Quota("read", 5, 10.0)  # 5 per 10 s: one every 2 s after the burst
    start = 1_000 * SECOND
    assert run(quota, [start] * 8) == [True] * 5 + [False] * 3
    # After the burst, 1.9 s buys nothing and 2 s buys exactly one more.
    outcomes = run(quota, [start] * 5 + [start + 19 * SECOND // 10, start + 2 * SECOND])
    assert outcomes == [True] * 5 + [False, True]


def test_refusal_reports_when_to_retry_and_headers() -> None:
    quota = Quota("write", 2, 60.0)
    now = 50 * SECOND
    decision, tats = decide([None], [quota], now)
    decision, tats = decide(tats, [quota], now)
    assert decision.allowed and decision.remaining == 0 and decision.reset_seconds == 60
    refused, unchanged = decide(tats, [quota], now)
    assert not refused.allowed and unchanged == tats
    assert refused.retry_after_seconds == 30  # one interval
    headers = dict(rate_limit_headers(refused))
    assert headers[b"ratelimit-policy"] == b'"write";q=2;w=60'
    assert headers[b"ratelimit"] == b'"write";r=0;t=60'
    assert headers[b"retry-after"] == b"30"


def test_several_buckets_are_all_or_nothing() -> None:
    wide, narrow = Quota("ip", 10, 60.0), Quota("user", 1, 60.0)
    now = 10 * SECOND
    first, tats = decide([None, None], [wide, narrow], now)
    second, after = decide(tats, [wide, narrow], now)
    assert first.allowed and not second.allowed
    assert after == tats  # the wide bucket was not charged for the refused request
    assert second.retry_after_seconds == 60


def test_local_buckets_charge_only_when_committing() -> None:
    buckets = LocalBuckets()
    quota = Quota("login", 1, 60.0)
    assert buckets.check(["k"], [quota], cost=1, commit=False).allowed
    assert buckets.check(["k"], [quota], cost=1, commit=True).allowed
    assert not buckets.check(["k"], [quota], cost=1, commit=False).allowed
