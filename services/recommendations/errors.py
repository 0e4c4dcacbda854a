"""Errors of the recommendations context."""

from shared.errors import NotFoundError


class RecommendationNotFoundError(NotFoundError):
    error_code = "RECOMMENDATION_NOT_FOUND"
