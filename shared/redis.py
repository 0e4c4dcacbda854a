"""Redis: one client per part, every key under the part's namespace prefix."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.errors import DependencyUnavailableError, ErrorTranslator


class RedisUnavailableError(DependencyUnavailableError):
    """Redis cannot be reached and this request cannot do without it."""

    error_code = "REDIS_UNAVAILABLE"
    default_message = "A dependency (Redis) is unavailable; retry shortly."

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        super().__init__(message, dependency="redis", **kwargs)  # type: ignore[arg-type]


def _redis_error(_: Exception) -> RedisUnavailableError:
    return RedisUnavailableError()


# For :func:`shared.errors.install_error_handlers`: a lost Redis that reaches a route
# (most callers fall back instead: Redis is never the only copy) is a 503 naming it.
REDIS_ERRORS: ErrorTranslator = ((RedisConnectionError, RedisTimeoutError), _redis_error)


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
