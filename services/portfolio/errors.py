"""Errors of the portfolio context (subclasses of :mod:`shared.errors`)::

PortfolioNotFoundError       404  not yours or not there (never 403: no existence leak)
TransactionNotFoundError     404
PortfolioNameTakenError      409
LedgerRefusedError           409  INSUFFICIENT_CASH, INSUFFICIENT_QUANTITY, NO_POSITION,
                                  ALREADY_REVERSED, NOT_REVERSIBLE: nothing was written
VersionMismatchError         412  If-Match names a version that is no longer current
PreconditionRequiredError    428  a change without If-Match
IdempotencyKeyReusedError    422  same Idempotency-Key, different request
UnknownTickerError           422  a BUY at the current price of a ticker market lacks
MarketUnavailableError       503  a price was needed and market did not answer
RecommendationNotFoundError  404  no call for that ticker or id in the latest live run
NoRecommendationsError       409  no live recommendation run has been published yet
RecommendationsUnavailableError
                             503  a call was needed and recommendations did not answer
"""

from __future__ import annotations

from typing import Any

from shared.errors import (
    AppError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationFailedError,
)


class PortfolioNotFoundError(NotFoundError):
    error_code = "PORTFOLIO_NOT_FOUND"
    default_message = "No such portfolio."


class TransactionNotFoundError(NotFoundError):
    error_code = "TRANSACTION_NOT_FOUND"
    default_message = "No such transaction in this portfolio."


class PortfolioNameTakenError(ConflictError):
    error_code = "PORTFOLIO_NAME_TAKEN"


class LedgerRefusedError(ConflictError):
    """The ledger refuses the entry; ``error_code`` is the domain's reason."""

    def __init__(self, reason: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, details=details)
        self.error_code = reason  # type: ignore[misc]


class VersionMismatchError(AppError):
    status_code = 412
    error_code = "VERSION_MISMATCH"
    default_message = "The portfolio changed since you read it; read it again and retry."


class PreconditionRequiredError(AppError):
    status_code = 428
    error_code = "PRECONDITION_REQUIRED"
    default_message = (
        "Changes to a portfolio need If-Match with its current ETag (or * to skip the check)."
    )


class IdempotencyKeyReusedError(ValidationFailedError):
    error_code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used for a different request."


class UnknownTickerError(ValidationFailedError):
    error_code = "UNKNOWN_TICKER"


class MarketUnavailableError(ServiceUnavailableError):
    error_code = "MARKET_UNAVAILABLE"
    default_message = "Current prices are unavailable; give a price or retry shortly."


class IdempotencyKeyRequiredError(ValidationFailedError):
    error_code = "IDEMPOTENCY_KEY_REQUIRED"
    default_message = (
        "Applying a rebalance needs an Idempotency-Key, so a retry cannot trade twice."
    )


class RebalanceRefusedError(ValidationFailedError):
    """Targets or constraints that cannot be met; ``error_code`` is the domain's reason."""

    def __init__(self, reason: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, details=details)
        self.error_code = reason  # type: ignore[misc]


class InvalidImportError(ValidationFailedError):
    error_code = "INVALID_IMPORT"


class RecommendationNotFoundError(NotFoundError):
    error_code = "RECOMMENDATION_NOT_FOUND"
    default_message = "The latest live recommendation run has no such call."


class NoRecommendationsError(ConflictError):
    error_code = "NO_RECOMMENDATIONS"
    default_message = "No live recommendation run has been published yet."


class RecommendationsUnavailableError(ServiceUnavailableError):
    error_code = "RECOMMENDATIONS_UNAVAILABLE"
    default_message = "The latest recommendations are unavailable; retry shortly."
