"""Per-role limits, and the count of a user's open sockets across every node.

A user's sockets are leases in a Redis sorted set (member = socket id, score = expiry in
ms): taking one is one atomic script (expire stale leases, count, add), each node renews
its leases every ``ttl / 3`` seconds and removes them on close, so a node that dies
frees its users' slots within ``ttl``. Redis is never the only copy of anything here:
if it is unreachable the node falls back to counting its own sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from redis.exceptions import RedisError

from shared.auth import ROLES, role_at_least
from shared.jwt import Claims
from shared.redis import RedisNamespace

logger = logging.getLogger("realtime.limits")

_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 1, #KEYS do
  local key = KEYS[i]
  redis.call('ZADD', key, 'XX', now_ms + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return 1
"""


@dataclass(frozen=True)
class RoleLimits:
    max_subscriptions: int
    max_connections: int


@dataclass(frozen=True)
class Limits:
    """What each role may hold; a caller gets the limits of their highest role."""

    by_role: dict[str, RoleLimits]

    def for_claims(self, claims: Claims) -> RoleLimits | None:
        for role in reversed(ROLES):
            if role_at_least(claims, role):
                return self.by_role[role]
        return None


@dataclass(frozen=True)
class Lease:
    user: str
    socket_id: str


class ConnectionLeases:
    """Counts each user's open sockets across nodes; see the module docstring."""

    def __init__(self, redis: RedisNamespace, *, ttl: float = 90.0) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl * 1000)
        self._ttl = ttl
        self._mine: dict[str, Lease] = {}
        self._local: Counter[str] = Counter()
        self._take = redis.client.register_script(_TAKE)
        self._renew = redis.client.register_script(_RENEW)
        self._task: asyncio.Task[None] | None = None

    def _key(self, user: str) -> str:
        return self._redis.key("ws", "sockets", user)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="ws-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def take(self, user: str, limit: int) -> Lease | None:
        """A lease for one more socket of ``user``, or None if they hold ``limit``."""
        lease = Lease(user, uuid.uuid4().hex)
        try:
            granted = await self._take(
                keys=[self._key(user)], args=[limit, self._ttl_ms, lease.socket_id]
            )
        except RedisError as exc:
            logger.warning("connection count unavailable (%s); counting this node only", exc)
            granted = int(self._local[user] < limit)
        if not granted:
            return None
        self._mine[lease.socket_id] = lease
        self._local[user] += 1
        return lease

    async def give_back(self, lease: Lease) -> None:
        if self._mine.pop(lease.socket_id, None) is None:
            return
        self._local[lease.user] -= 1
        if self._local[lease.user] <= 0:
            del self._local[lease.user]
        with contextlib.suppress(RedisError):
            await self._redis.client.zrem(self._key(lease.user), lease.socket_id)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            leases = list(self._mine.values())
            for start in range(0, len(leases), 500):
                chunk = leases[start : start + 500]
                try:
                    await self._renew(
                        keys=[self._key(lease.user) for lease in chunk],
                        args=[self._ttl_ms, *(lease.socket_id for lease in chunk)],
                    )
                except RedisError as exc:
                    logger.warning("could not renew socket leases: %s", exc)
                    break
