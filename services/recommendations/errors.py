"""Errors of the recommendations context.

AppError (shared)
├── NotFoundError ── RecommendationNotFoundError, RunNotFoundError
├── ConflictError ── RunExistsError        a run of that trading day exists
└── ServiceUnavailableError ── MarketInputsUnavailableError   market did not answer
"""

from shared.errors import ConflictError, NotFoundError, ServiceUnavailableError


class RecommendationNotFoundError(NotFoundError):
    error_code = "RECOMMENDATION_NOT_FOUND"


class RunNotFoundError(NotFoundError):
    error_code = "RUN_NOT_FOUND"


class RunExistsError(ConflictError):
    error_code = "RUN_EXISTS"


class MarketInputsUnavailableError(ServiceUnavailableError):
    error_code = "MARKET_INPUTS_UNAVAILABLE"
