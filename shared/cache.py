"""Cache-aside for encoded HTTP bodies, with ETag / ``If-None-Match`` and gzip.

:class:`ResponseCache` keeps bodies in Redis (shared by a part's replicas, each entry with
its own TTL) and, in front of it, for at most ``local_ttl`` seconds, in the process. A miss
builds the body once even when many requests miss together (single flight). Each body is
stored with its ETag (a hash of the bytes) and, when it is large, gzip-compressed once, so a
hit costs no serialisation and no compression. Entries carry tags; :meth:`invalidate` drops
every entry of a tag (call it when the data behind them changes, for example on an event).

Redis is never the only copy: when it fails, bodies are built from the source and the
failure is logged, at most once a minute.

:func:`cached_response` turns a :class:`CachedBody` into the HTTP answer: ``304`` when the
client's ``If-None-Match`` matches, the gzip bytes when the client accepts them.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from shared.redis import RedisNamespace

logger = logging.getLogger("shared.cache")

GZIP_MIN_BYTES = 1024


@dataclass(frozen=True, slots=True)
class CachedBody:
    """An encoded body, its ETag, its media type and (if large) its gzip form."""

    body: bytes
    etag: str
    media_type: str
    gzipped: bytes | None = None

    @classmethod
    def build(
        cls, body: bytes, media_type: str = "application/json", *, gzip_min: int = GZIP_MIN_BYTES
    ) -> CachedBody:
        """Hash ``body`` for its ETag and compress it when it has at least ``gzip_min`` bytes."""
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        gzipped = gzip.compress(body, compresslevel=5, mtime=0) if len(body) >= gzip_min else None
        return cls(body, etag, media_type, gzipped)

    def to_bytes(self) -> bytes:
        """The form stored in Redis: a header line, then the body (gzip form when there is one)."""
        payload = self.gzipped if self.gzipped is not None else self.body
        flag = b"1" if self.gzipped is not None else b"0"
        return b"%s %s %s\n" % (self.etag.encode(), self.media_type.encode(), flag) + payload

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedBody:
        """Inverse of :meth:`to_bytes`."""
        header, _, payload = data.partition(b"\n")
        etag, media_type, flag = header.decode().split(" ")
        if flag == "1":
            return cls(gzip.decompress(payload), etag, media_type, payload)
        return cls(payload, etag, media_type, None)


Builder = Callable[[], Awaitable[CachedBody]]


class ResponseCache:
    """See the module docstring. ``namespace`` prefixes every key (after the Redis prefix)."""

    def __init__(
        self,
        redis: RedisNamespace,
        *,
        namespace: str = "cache",
        local_ttl: float = 1.0,
        local_max_entries: int = 4096,
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._local_ttl = local_ttl
        self._local_max = local_max_entries
        self._local: dict[str, tuple[float, CachedBody]] = {}
        self._inflight: dict[str, asyncio.Future[CachedBody]] = {}
        self._last_warning = 0.0
        self.hits = 0
        self.misses = 0

    def _key(self, key: str) -> str:
        return self._redis.key(self._namespace, key)

    def _tag_key(self, tag: str) -> str:
        return self._redis.key(self._namespace, "tag", tag)

    async def get_or_build(
        self, key: str, ttl: float, build: Builder, *, tags: Sequence[str] = ()
    ) -> CachedBody:
        """The cached body for ``key``, or ``await build()`` stored for ``ttl`` seconds."""
        now = time.monotonic()
        local = self._local.get(key)
        if local is not None and local[0] > now:
            self.hits += 1
            return local[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[CachedBody] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._fetch_or_build(key, ttl, build, tags)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
            self._remember(key, value, min(ttl, self._local_ttl))
            return value
        finally:
            del self._inflight[key]

    async def _fetch_or_build(
        self, key: str, ttl: float, build: Builder, tags: Sequence[str]
    ) -> CachedBody:
        try:
            stored = await self._redis.client.get(self._key(key))
        except RedisError as exc:
            self._warn(exc)
            stored = None
        if isinstance(stored, bytes):
            self.hits += 1
            return CachedBody.from_bytes(stored)
        self.misses += 1
        value = await build()
        try:
            pipe = self._redis.client.pipeline(transaction=False)
            pipe.set(self._key(key), value.to_bytes(), px=max(1, int(ttl * 1000)))
            for tag in tags:
                pipe.sadd(self._tag_key(tag), key)
                pipe.expire(self._tag_key(tag), 86_400)
            await pipe.execute()
        except RedisError as exc:
            self._warn(exc)
        return value

    def _remember(self, key: str, value: CachedBody, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._local) >= self._local_max:
            now = time.monotonic()
            for stale in [k for k, (exp, _) in self._local.items() if exp <= now]:
                del self._local[stale]
            if len(self._local) >= self._local_max:
                self._local.clear()
        self._local[key] = (time.monotonic() + ttl, value)

    async def invalidate(self, *tags: str) -> int:
        """Drop every entry stored with any of ``tags`` (and this process's local copies).
        Returns the number of Redis entries removed."""
        self._local.clear()
        removed = 0
        try:
            for tag in tags:
                members = await self._redis.client.smembers(self._tag_key(tag))
                keys = [self._key(m.decode() if isinstance(m, bytes) else str(m)) for m in members]
                if keys:
                    removed += int(await self._redis.client.delete(*keys))
                await self._redis.client.delete(self._tag_key(tag))
        except RedisError as exc:
            self._warn(exc)
        return removed

    def peek_local(self, key: str) -> CachedBody | None:
        """This process's unexpired copy of ``key``, without touching Redis (or None)."""
        local = self._local.get(key)
        if local is not None and local[0] > time.monotonic():
            self.hits += 1
            return local[1]
        return None

    def clear_local(self) -> None:
        """Forget this process's copies (another replica changed the data)."""
        self._local.clear()

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning("response cache: Redis failed, serving from the source: %s", exc)


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def cached_response(
    request: Request,
    cached: CachedBody,
    *,
    max_age: int = 0,
    headers: dict[str, str] | None = None,
) -> Response:
    """The response for ``cached``: 304 if the client has it, gzip if it accepts it."""
    out = {
        "ETag": cached.etag,
        "Cache-Control": f"private, max-age={max_age}",
        "Vary": "Accept-Encoding",
        **(headers or {}),
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, cached.etag):
        return Response(status_code=304, headers=out)
    if cached.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        out["Content-Encoding"] = "gzip"
        return Response(cached.gzipped, media_type=cached.media_type, headers=out)
    return Response(cached.body, media_type=cached.media_type, headers=out)
