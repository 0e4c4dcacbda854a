"""The rate limiter: Redis when it answers, this process's memory when it does not.

Every check is one ``EVALSHA`` of the script in :mod:`gateway.limits.script`: atomic
across any number of gateway instances, one round trip, and every key it writes expires
when its bucket is full again.

When Redis fails, the limiter switches to a local GCRA store with the same quotas (so
each instance enforces the quota on its own: with N instances a client may get up to N
times its quota while Redis is down) and tries Redis again every ``retry_seconds``.
Checks marked ``strict`` (logins) never fall back: they raise
:class:`LimiterUnavailableError` so the caller can fail closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from gateway.limits.gcra import Decision, Quota, decide, decision_from
from gateway.limits.resp import PipelinedRedis, RedisReplyError
from gateway.limits.script import GCRA_LUA

logger = logging.getLogger("gateway.limits")


class LimiterUnavailableError(Exception):
    """Redis is down and the check was strict."""


class LocalBuckets:
    """In-process GCRA buckets (the fallback). Bounded: expired buckets are dropped
    when the table grows past ``max_keys``."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tats: dict[str, int] = {}
        self._max_keys = max_keys

    def check(
        self, keys: Sequence[str], quotas: Sequence[Quota], cost: int, commit: bool
    ) -> Decision:
        now = time.time_ns() // 1000
        if len(self._tats) > self._max_keys:
            self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        decision, new_tats = decide([self._tats.get(k) for k in keys], quotas, now, cost)
        if decision.allowed and commit and cost:
            for key, tat in zip(keys, new_tats, strict=True):
                self._tats[key] = tat
        return decision


class RateLimiter:
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "",
        timeout: float = 0.5,
        retry_seconds: float = 2.0,
    ) -> None:
        # Its own connection with a short timeout: a slow Redis must not stall requests.
        self._client = PipelinedRedis(redis_url, timeout=timeout)
        self._prefix = prefix
        self._local = LocalBuckets()
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._down_since: float | None = None
        self.last_error: str | None = None

    @property
    def mode(self) -> str:
        """``redis``, or ``local`` while Redis is considered down."""
        return "local" if time.monotonic() < self._down_until else "redis"

    def key(self, *parts: str) -> str:
        return self._prefix + "rl:" + ":".join(parts)

    async def check(
        self,
        keys: Sequence[str],
        quotas: Sequence[Quota],
        *,
        cost: int = 1,
        commit: bool = True,
        strict: bool = False,
    ) -> Decision:
        """Charge ``cost`` to every bucket if all allow it (``commit=False``: only look).

        A strict check asks Redis every time, even while it is considered down: it has no
        fallback, so it must notice at once that Redis is back."""
        if strict or time.monotonic() >= self._down_until:
            try:
                decision = await self._check_redis(keys, quotas, cost, commit)
            except (RedisReplyError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
            else:
                if self._down_since is not None:
                    logger.info(
                        "rate limiter: Redis is back after %.1fs; limits are shared again",
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
                    self._down_until = 0.0
                return decision
        if strict:
            raise LimiterUnavailableError(self.last_error)
        return self._local.check(keys, quotas, cost, commit)

    def _redis_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:  # once per outage, not per request or retry
            self._down_since = now
            logger.warning("rate limiter: Redis unavailable, using local buckets: %s", exc)
        self._down_until = now + self._retry_seconds
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    async def _check_redis(
        self, keys: Sequence[str], quotas: Sequence[Quota], cost: int, commit: bool
    ) -> Decision:
        args: list[int | str] = [cost, 1 if commit else 0]
        for quota in quotas:
            args.extend((quota.limit, quota.period_us))
        reply = await self._client.evalsha(GCRA_LUA, list(keys), args)
        allowed = reply[0] == 1
        retry = max(int(reply[3 + 3 * i]) for i in range(len(keys)))
        self.last_error = None
        return decision_from(allowed, quotas[0], int(reply[1]), int(reply[2]), retry)

    async def close(self) -> None:
        await self._client.close()
