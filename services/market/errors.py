"""Errors of the market context."""

from shared.errors import NotFoundError


class StockNotFoundError(NotFoundError):
    error_code = "STOCK_NOT_FOUND"

    def __init__(self, ticker: str) -> None:
        super().__init__(f"No stock with ticker {ticker}.", details={"ticker": ticker})
