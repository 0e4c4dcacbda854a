"""How the gateway's answers leave: refusals in the common envelope, the security
headers every answer carries, and gzip for clients that accept it."""

from __future__ import annotations

import orjson
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.webpages import CONTENT_SECURITY_POLICY, is_page
from shared.errors import AppError, error_body


async def send_error(
    send: Send, error: AppError, request_id: str | None, extra: list[tuple[bytes, bytes]]
) -> None:
    """Answer with ``error`` in the envelope, plus ``extra`` headers."""
    body = orjson.dumps(error_body(error.error_code, error.message, error.details, request_id))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(extra)
    headers.extend((k.lower().encode(), v.encode()) for k, v in error.headers.items())
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Headers that make every answer safe to meet in a browser. API answers get a policy
    that allows nothing; the console's and the docs' pages and assets
    (:mod:`gateway.webpages`) get theirs: this origin only, no inline code."""

    _COMMON = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )
    _API_ONLY = ((b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),)
    _PAGES_ONLY = ((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),)

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        extra = []
        if hsts_seconds:
            extra.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_seconds}; includeSubDomains".encode(),
                )
            )
        self._page_headers = [*self._COMMON, *self._PAGES_ONLY, *extra]
        self.api_headers = [*self._COMMON, *self._API_ONLY, *extra]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = self._page_headers if is_page(scope["path"]) else self.api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class GzipWhenAccepted(GZipMiddleware):
    """Starlette's gzip, stepping aside entirely for clients that do not accept gzip
    (Starlette wraps every response in a pass-through responder otherwise: one more
    layer per request for API clients that never compress)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value:
                    await super().__call__(scope, receive, send)
                    return
        await self.app(scope, receive, send)
