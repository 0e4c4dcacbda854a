"""The fast path for cached reads: an ASGI middleware, inside the request-id middleware,
that answers a GET whose body this process holds in its one-second local cache without
going through FastAPI's routing and dependency resolution (which cost several times more
than the cached answer itself). The caller is still authenticated and authorised on every
request (the token verifier remembers verified tokens); anything else - a miss, a bad or
missing token, another method - goes to the app as usual, which renders errors and fills
the cache under the same key (:func:`request_key`).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.market.deps import authorize
from shared.cache import ResponseCache, cached_response
from shared.errors import AppError


def request_key(scope: Scope) -> str:
    """The cache key of a GET: its path and raw query string."""
    query: bytes = scope.get("query_string", b"")
    path: str = scope["path"]
    return path + ("?" + query.decode("latin-1") if query else "")


@dataclass(frozen=True, slots=True)
class CachedRoute:
    """What the fast path needs to answer like the route would: its template (for the
    metrics label), the minimum role and the Cache-Control max-age."""

    path: str
    role: str
    max_age: int


class CachedReads:
    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(self.prefixes)
        ):
            state = scope["app"].state
            cache: ResponseCache | None = getattr(state, "response_cache", None)
            key = request_key(scope)
            route: CachedRoute | None = getattr(state, "cached_routes", {}).get(key)
            body = cache.peek_local(key) if cache is not None and route is not None else None
            if body is not None and route is not None:
                request = Request(scope, receive)
                try:
                    await authorize(request, route.role)
                except AppError:
                    pass  # the app answers with the error envelope
                else:
                    scope["route"] = route  # the access log and metrics label it like the app
                    response = cached_response(request, body, max_age=route.max_age)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
