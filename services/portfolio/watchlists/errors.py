"""Errors of the watchlists (subclasses of :mod:`shared.errors`)::

WatchlistNotFoundError     404  not yours or not there (never 403: no existence leak)
WatchlistNameTakenError    409
WatchlistQuotaError        409  the owner has the most lists allowed
WatchlistRefusedError      409  TICKER_ALREADY_LISTED, TICKER_NOT_LISTED (404 for a
                                removal, see routes), WATCHLIST_FULL; 422 DUPLICATE_TICKER
UnknownTickerError         422  market has no quote for a ticker being added
MarketUnavailableError     503  a ticker being added could not be checked (market away)
(412/428 of If-Match are portfolio's VersionMismatchError / PreconditionRequiredError)
"""

from __future__ import annotations

from typing import Any

from shared.errors import AppError, ConflictError, NotFoundError


class WatchlistNotFoundError(NotFoundError):
    error_code = "WATCHLIST_NOT_FOUND"
    default_message = "No such watchlist."


class WatchlistNameTakenError(ConflictError):
    error_code = "WATCHLIST_NAME_TAKEN"


class WatchlistQuotaError(ConflictError):
    error_code = "WATCHLIST_QUOTA_EXCEEDED"


class WatchlistRefusedError(AppError):
    """A change the rules refuse; ``error_code`` is the domain's reason, the status the
    one that reason calls for."""

    def __init__(self, reason: str, message: str, details: dict[str, Any], status: int) -> None:
        super().__init__(message, details=details)
        self.error_code = reason  # type: ignore[misc]
        self.status_code = status  # type: ignore[misc]
