"""Redis: one client per part, every key under the part's namespace prefix."""

from __future__ import annotations

import redis.asyncio as aioredis


class RedisNamespace:
    """A Redis client and the prefix every key of this part carries.

    Redis is never the only copy of anything: callers must cope with a miss or an outage.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        """The full key for ``parts`` joined with ``:``, under the prefix."""
        return self.prefix + ":".join(parts)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


def connect_redis(url: str, *, prefix: str = "", timeout: float = 2.0) -> RedisNamespace:
    """A pooled client; connections open lazily, and every call times out after ``timeout``."""
    client = aioredis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    return RedisNamespace(client, prefix)
