"""Errors raised by the message bus, placed in the common error tree::

AppError
+-- RemoteError                      the responder answered with an error envelope
+-- UpstreamError
|   +-- InvalidResponseError         the reply did not match the expected model
+-- DependencyUnavailableError       503 with Retry-After, ``details.dependency``
    +-- MessagingUnavailableError    not connected, closed or draining (``nats``)
        +-- RequestTimeoutError      no reply in time (the subject's context: ``market``)
        +-- NoRespondersError        nobody serves the subject (the subject's context)
"""

from __future__ import annotations

from typing import Any

from shared.errors import AppError, DependencyUnavailableError, UpstreamError


class MessagingUnavailableError(DependencyUnavailableError):
    """The bus cannot carry the message now (disconnected, closed, draining)."""

    error_code = "MESSAGING_UNAVAILABLE"
    default_message = "The message bus is unavailable."
    # The bus reconnects every second: a client may retry sooner than after a database loss.
    retry_after = 2

    def __init__(self, message: str | None = None, *, subject: str | None = None) -> None:
        super().__init__(message, dependency=self._dependency(subject))
        self.subject = subject  # for logs only: subjects are not shown to clients

    @staticmethod
    def _dependency(subject: str | None) -> str:
        return "nats"


class _NoAnswer(MessagingUnavailableError):
    # The bus carried the request; the part serving it did not answer: name that part
    # (the subject's context, ``market`` for ``market.rpc.quotes``), not the bus.
    @staticmethod
    def _dependency(subject: str | None) -> str:
        return subject.split(".", 1)[0] if subject else "nats"


class RequestTimeoutError(_NoAnswer):
    """A request got no reply within its timeout."""

    error_code = "DEPENDENCY_TIMEOUT"
    default_message = "A dependency did not answer in time."


class NoRespondersError(_NoAnswer):
    """A request found nobody serving its subject."""

    default_message = "A dependency is not available."


class InvalidResponseError(UpstreamError):
    """A reply arrived but did not match the expected response model."""

    default_message = "A dependency sent an invalid response."


class RemoteError(AppError):
    """The responder reported an error; its status, code, message and details are kept."""

    def __init__(
        self,
        *,
        status_code: int,
        error_code: str,
        message: str,
        details: dict[str, Any] | list[Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, details=details)
        # The base class declares these per class; a remote error only knows them per instance.
        self.status_code = status_code  # type: ignore[misc]
        self.error_code = error_code  # type: ignore[misc]
        self.request_id = request_id
