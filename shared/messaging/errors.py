"""Errors raised by the message bus, placed in the common error tree::

AppError
+-- RemoteError                      the responder answered with an error envelope
+-- UpstreamError
|   +-- InvalidResponseError         the reply did not match the expected model
+-- ServiceUnavailableError
    +-- MessagingUnavailableError    not connected, closed or draining
        +-- RequestTimeoutError      no reply in time
        +-- NoRespondersError        nobody serves the subject
"""

from __future__ import annotations

from typing import Any

from shared.errors import AppError, ServiceUnavailableError, UpstreamError


class MessagingUnavailableError(ServiceUnavailableError):
    """The bus cannot carry the message now (disconnected, closed, draining)."""

    default_message = "The message bus is unavailable."

    def __init__(self, message: str | None = None, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject  # for logs only: subjects are not shown to clients


class RequestTimeoutError(MessagingUnavailableError):
    """A request got no reply within its timeout."""

    default_message = "A dependency did not answer in time."


class NoRespondersError(MessagingUnavailableError):
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
