"""One error tree, rendered in one envelope.

Every error a client sees has the shape::

    {"error_code": "STOCK_NOT_FOUND", "message": "...", "details": {...},
     "timestamp": "2026-01-02T03:04:05.678Z", "request_id": "..."}

The tree (each service subclasses these; nobody raises ``HTTPException`` for a domain condition)::

    AppError                    500 INTERNAL_ERROR
    +-- BadRequestError         400 BAD_REQUEST
    +-- AuthenticationError     401 UNAUTHENTICATED
    +-- PermissionDeniedError   403 FORBIDDEN
    +-- NotFoundError           404 NOT_FOUND
    +-- ConflictError           409 CONFLICT
    +-- PayloadTooLargeError    413 PAYLOAD_TOO_LARGE
    +-- ValidationFailedError   422 VALIDATION_ERROR
    +-- RateLimitedError        429 RATE_LIMITED
    +-- UpstreamError           502 UPSTREAM_ERROR
    +-- ServiceUnavailableError 503 SERVICE_UNAVAILABLE
        +-- DependencyUnavailableError 503, ``Retry-After``, ``details.dependency``

A lost dependency (PostgreSQL, Redis, NATS, an upstream part) is a
:class:`DependencyUnavailableError`: the client is told which one and when to retry, and
the log gets one WARNING per outage (:class:`shared.health.Outages`), not one per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.context import REQUEST_ID_HEADER, get_request_id

logger = logging.getLogger("shared.errors")


class AppError(Exception):
    """Base of every error Bourse reports to a client."""

    status_code: ClassVar[int] = 500
    error_code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "An unexpected error occurred."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        self.message = message or self.default_message
        # True for an error answered after a change that must stand (a revoked token
        # family): the request's transaction commits instead of rolling back.
        self.keep_changes = keep_changes
        self.details = details if details is not None else {}
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequestError(AppError):
    status_code = 400
    error_code = "BAD_REQUEST"
    default_message = "The request is malformed."


class AuthenticationError(AppError):
    status_code = 401
    error_code = "UNAUTHENTICATED"
    default_message = "Missing or invalid credentials."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class PermissionDeniedError(AppError):
    status_code = 403
    error_code = "FORBIDDEN"
    default_message = "You are not allowed to do this."


class NotFoundError(AppError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "Not found."


class ConflictError(AppError):
    status_code = 409
    error_code = "CONFLICT"
    default_message = "The request conflicts with the current state."


class PayloadTooLargeError(AppError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."


class ValidationFailedError(AppError):
    status_code = 422
    error_code = "VALIDATION_ERROR"
    default_message = "The request is not valid."


class RateLimitedError(AppError):
    status_code = 429
    error_code = "RATE_LIMITED"
    default_message = "Too many requests."


class UpstreamError(AppError):
    status_code = 502
    error_code = "UPSTREAM_ERROR"
    default_message = "An upstream service failed."


class ServiceUnavailableError(AppError):
    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable."


class DependencyUnavailableError(ServiceUnavailableError):
    """A server this request needs cannot serve it now: ``503`` with ``Retry-After`` and
    ``details.dependency`` naming it (``postgres``, ``redis``, ``nats``, ``market`` ...)."""

    error_code = "DEPENDENCY_UNAVAILABLE"
    default_message = "A dependency is unavailable; retry shortly."
    # Seconds a client is asked to wait: about how long a restarted server takes to answer.
    retry_after: ClassVar[int] = 5

    def __init__(
        self,
        message: str | None = None,
        *,
        dependency: str,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        self.dependency = dependency
        wait = self.retry_after if retry_after is None else retry_after
        super().__init__(
            message,
            details={"dependency": dependency, **(details or {})},
            headers={"Retry-After": str(wait), **(headers or {})},
            keep_changes=keep_changes,
        )


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


class ErrorEnvelope(BaseModel):
    """The body of every error response (for the OpenAPI document)."""

    error_code: str
    message: str
    details: dict[str, Any] | list[Any]
    timestamp: str
    request_id: str | None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role does not allow this",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Invalid input",
    429: "Rate limited",
    503: "A dependency is unavailable",
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``status_codes`` with the envelope."""
    return {
        code: {"model": ErrorEnvelope, "description": _DESCRIPTIONS.get(code, "Error")}
        for code in status_codes
    }


def utc_timestamp() -> str:
    """Now, as an ISO-8601 UTC timestamp with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(
    error_code: str,
    message: str,
    details: dict[str, Any] | list[Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The envelope as a dict; also used for errors sent over NATS."""
    return {
        "error_code": error_code,
        "message": message,
        "details": details if details is not None else {},
        "timestamp": utc_timestamp(),
        "request_id": request_id if request_id is not None else get_request_id(),
    }


def error_response(
    status_code: int,
    error_code: str,
    message: str,
    details: dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render the envelope as an HTTP response carrying the request id."""
    body = error_body(error_code, message, details)
    all_headers = dict(headers or {})
    if body["request_id"]:
        all_headers[REQUEST_ID_HEADER] = body["request_id"]
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        media_type="application/json",
        headers=all_headers,
    )


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if isinstance(exc, DependencyUnavailableError):
        # One WARNING per outage, from the part's outage tracker; none per request.
        outages = getattr(request.app.state, "outages", None)
        if outages is not None:
            outages.failed(exc.dependency, exc.message)
        else:
            logger.warning("request failed: %s %s", exc.error_code, exc.message)
    elif exc.status_code >= 500:
        logger.warning("request failed: %s %s", exc.error_code, exc.message)
    return error_response(exc.status_code, exc.error_code, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Name the field and the rule; never echo the submitted value back.
    problems = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return error_response(
        422, "VALIDATION_ERROR", "The request is not valid.", {"errors": problems}
    )


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error."
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


# Turns a library's exception (a lost database connection, a cut query) into the
# AppError the client should see: the exception classes it takes, and the function.
ErrorTranslator = tuple[tuple[type[Exception], ...], Callable[[Exception], AppError]]


async def _unexpected_error(_: Request, exc: Exception) -> Response:
    # The client learns only that it failed and the id to quote; the log has the rest.
    logger.exception("unhandled error", exc_info=exc)
    # Starlette re-raises the error after this answer, and uvicorn then closes the
    # connection: saying so keeps a client (the gateway's pool) from sending its next
    # request on it, where it would never be read.
    return error_response(
        500, AppError.error_code, AppError.default_message, headers={"Connection": "close"}
    )


def install_error_handlers(app: FastAPI, translators: Sequence[ErrorTranslator] = ()) -> None:
    """Render every error raised in ``app`` in the common envelope; the exceptions that
    ``translators`` name are answered as the AppError they translate to (registered per
    class: a handler for ``Exception`` itself would be Starlette's last resort, which
    re-raises after answering, and the server would log a traceback for a known failure)."""
    for classes, translate in translators:

        async def translated(
            request: Request, exc: Exception, translate: Callable[[Exception], AppError] = translate
        ) -> Response:
            return await _app_error(request, translate(exc))

        for cls in classes:
            app.add_exception_handler(cls, translated)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


class MethodNotAllowedError(AppError):
    """The path exists, not with this method; raise it with an ``Allow`` header."""

    status_code = 405
    error_code = "METHOD_NOT_ALLOWED"
    default_message = "This method is not allowed here."
