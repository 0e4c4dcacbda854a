"""Typed dependencies of the market service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from services.market.domain import TICKER_PATTERN
from shared.deps import Admin, DbPool, Viewer


def valid_ticker(
    ticker: Annotated[
        str, Path(pattern=TICKER_PATTERN, description="1-5 letters, optional class: BRK.B")
    ],
) -> str:
    return ticker.upper()


Ticker = Annotated[str, Depends(valid_ticker)]

__all__ = ["Admin", "DbPool", "Ticker", "Viewer"]
