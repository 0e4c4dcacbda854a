"""Errors of the portfolio context."""

from shared.errors import ConflictError, NotFoundError


class PortfolioNotFoundError(NotFoundError):
    error_code = "PORTFOLIO_NOT_FOUND"


class PortfolioNameTakenError(ConflictError):
    error_code = "PORTFOLIO_NAME_TAKEN"
