"""Errors of the market context."""

from datetime import date

from shared.errors import ConflictError, NotFoundError, ValidationFailedError


class StockNotFoundError(NotFoundError):
    error_code = "STOCK_NOT_FOUND"

    def __init__(self, ticker: str) -> None:
        super().__init__(f"No stock with ticker {ticker}.", details={"ticker": ticker})


class InvalidDateRangeError(ValidationFailedError):
    error_code = "INVALID_DATE_RANGE"

    def __init__(self, start: date, end: date) -> None:
        super().__init__(
            "start must not be after end.",
            details={"start": start.isoformat(), "end": end.isoformat()},
        )


class InvalidImportError(ValidationFailedError):
    error_code = "INVALID_IMPORT"
    default_message = "The file cannot be imported."


class UniverseLoadingError(ConflictError):
    error_code = "UNIVERSE_LOADING"
    default_message = "The market universe is being loaded; try again when it is complete."
